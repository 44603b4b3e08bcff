"""The client's surface against a live server: auth, records, paging, errors, retries."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from microtome_client import (
    AsyncClient,
    AuthenticationError,
    Client,
    Conflict,
    ConnectionFailed,
    Forbidden,
    NotFound,
    Project,
    RetryPolicy,
    ServerError,
)

from tests.client.conftest import PASSWORD, LiveServer, free_port, unique

FAST = RetryPolicy(attempts=3, backoff=0.01, max_backoff=0.02)


def test_server_down_is_one_clear_error_quickly() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    t0 = time.monotonic()
    with Client(url, api_key="x", timeout=2, retry=FAST) as c, \
            pytest.raises(ConnectionFailed, match=r"127\.0\.0\.1"):
        c.me()
    assert time.monotonic() - t0 < 10


def test_silent_server_times_out_instead_of_hanging() -> None:
    with socket.socket() as s:  # accepts connections (backlog) but never answers
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        t0 = time.monotonic()
        with Client(url, api_key="x", timeout=0.5, retry=FAST) as c, \
                pytest.raises(ConnectionFailed, match="Timeout"):
            c.projects().__next__()
        assert time.monotonic() - t0 < 10


def test_wrong_url_is_refused_up_front() -> None:
    with pytest.raises(ValueError, match="http"):
        Client("localhost:8000", api_key="x")


def test_bad_key_is_an_authentication_error(live_server: LiveServer) -> None:
    with Client(live_server.url, api_key="mtk_not_a_real_key") as c, \
            pytest.raises(AuthenticationError) as exc:
        c.me()
    assert exc.value.status == 401 and exc.value.error


def test_bad_password_is_an_authentication_error(live_server: LiveServer) -> None:
    with pytest.raises(AuthenticationError), Client(live_server.url, username="admin",
                                                    password="wrong password!") as c:
        c.me()


def test_login_with_password_then_writes_carry_csrf(client: Any,
                                                    live_server: LiveServer) -> None:
    name = unique("alice")
    user = client.create_user(name, PASSWORD)
    assert user.username == name and not user.is_admin
    with Client(live_server.url, username=name, password=PASSWORD) as alice:
        assert alice.me().id == user.id
        project = alice.create_project(unique("alice-project"))  # a POST with CSRF
        assert project.role == "manager"
        key = alice.create_api_key("laptop")
        assert key.key and key.prefix
        assert [k.id for k in alice.api_keys()] == [key.id]
    with Client(live_server.url, api_key=key.key) as by_key:
        assert by_key.me().username == name
        by_key.revoke_api_key(key.id)
    with Client(live_server.url, api_key=key.key) as by_key, \
            pytest.raises(AuthenticationError):
        by_key.me()


def test_accounts_passwords_and_disabling(client: Any, live_server: LiveServer) -> None:
    name = unique("carol")
    user = client.create_user(name, PASSWORD)
    with Client(live_server.url, username=name, password=PASSWORD) as carol:
        key = carol.create_api_key("script")
        with pytest.raises(Forbidden):
            carol.change_password("not my password", PASSWORD + "2")
        carol.change_password(PASSWORD, PASSWORD + "2")
        assert carol.me().id == user.id  # this session stays
    with pytest.raises(AuthenticationError), Client(live_server.url, username=name,
                                                    password=PASSWORD) as old:
        old.me()
    disabled = client.set_user_disabled(user, True)
    assert disabled.disabled
    with Client(live_server.url, api_key=key.key) as by_key, pytest.raises(AuthenticationError):
        by_key.me()  # a disabled account's keys stop at once
    assert not client.set_user_disabled(user, False).disabled
    client.reset_password(user, PASSWORD + "3")
    with Client(live_server.url, username=name, password=PASSWORD + "3") as again:
        assert again.me().username == name


def test_reset_link_forced_change_roles_and_sessions(client: Any,
                                                     live_server: LiveServer) -> None:
    name = unique("dora")
    user = client.create_user(name, PASSWORD)
    link = client.create_reset_link(user)
    assert link["url"].endswith(f"/reset#token={link['token']}")
    with Client(live_server.url) as anonymous:
        assert anonymous.check_reset_link(link["token"])["username"] == name
        with Client(live_server.url, username=name, password=PASSWORD) as held:
            assert held.me().must_change_password
            with pytest.raises(Forbidden) as info:
                list(held.projects())
            assert info.value.detail["reason"] == "password_change_required"
        anonymous.use_reset_link(link["token"], PASSWORD + "4")
        with pytest.raises(NotFound):
            anonymous.use_reset_link(link["token"], PASSWORD + "5")
    assert client.set_user_admin(user, True).is_admin
    with Client(live_server.url, username=name, password=PASSWORD + "4") as dora:
        assert not dora.me().must_change_password
        assert [s.current for s in dora.sessions()] == [True]
        dora.sign_out_everywhere()
        with pytest.raises(AuthenticationError):
            dora.me()


def test_permissions_become_exceptions(client: Any, live_server: LiveServer) -> None:
    name = unique("bob")
    client.create_user(name, PASSWORD)
    private = client.create_project(unique("private"))
    with Client(live_server.url, username=name, password=PASSWORD) as bob:
        with pytest.raises(Forbidden) as exc:
            bob.create_user(unique("eve"), PASSWORD)
        assert exc.value.status == 403
        with pytest.raises((NotFound, Forbidden)):
            bob.project(private.id)
        assert private.id not in [p.id for p in bob.projects()]
    with pytest.raises(Conflict):
        client.create_user(name, PASSWORD)  # the name is taken
    with pytest.raises(NotFound) as nf:
        client.image(10**12)
    assert nf.value.status == 404 and nf.value.error


def test_records_are_typed_and_pages_are_lazy(client: Any) -> None:
    prefix = unique("paged")
    made = [client.create_project(f"{prefix}-{i}") for i in range(7)]
    assert isinstance(made[0].unwrap(), Project) and made[0].name == f"{prefix}-0"
    requests: list[str] = []

    async def hook(request: Any) -> None:
        requests.append(str(request.url))

    client.unwrap().t.http.event_hooks["request"].append(hook)
    it = client.projects(page_size=3)
    next(it)
    assert len(requests) == 1 and "limit=3" in requests[0]
    ids = {p.id for p in client.projects(page_size=3)}
    assert {p.id for p in made} <= ids
    assert len(requests) > 3  # several pages, one request each
    assert client.project(made[3].name).id == made[3].id  # by name


def test_members_terms_share_links_jobs(client: Any, ready_images: dict[str, int]) -> None:
    project = client.create_project(unique("team"))
    name = unique("carol")
    client.create_user(name, PASSWORD)
    member = project.add_member(name, "viewer")
    assert member.role == "viewer"
    assert project.set_member_role(member, "contributor").role == "contributor"
    assert {m.username for m in project.members()} >= {name}
    project.remove_member(member)
    assert name not in {m.username for m in project.members()}

    tumour = project.create_term("tumour", "#ff0000")
    assert project.term("TUMOUR").id == tumour.id
    assert tumour.update(name="tumor").name == "tumor"
    tumour.delete()
    assert project.terms() == []

    image = client.image(ready_images["CMU-1-Small-Region.svs"])
    project.add_image(image)
    assert [i.id for i in project.images()] == [image.id]
    link = client.create_share_link(image=image, expires_in=3600)
    assert link.token and link.image_id == image.id
    assert [i["id"] for i in client.share_info(link.token)["images"]] == [image.id]
    assert link.id in {s.id for s in client.share_links()}
    link.revoke()
    jobs = list(image.jobs())
    assert jobs and jobs[-1].status == "done" and client.job(jobs[-1].id).id == jobs[-1].id
    project.remove_image(image)
    project.delete()


def test_async_client_has_the_same_surface(live_server: LiveServer) -> None:
    async def main() -> tuple[str, list[int]]:
        async with AsyncClient(live_server.url, api_key=live_server.api_key) as c:
            me = await c.me()
            project = await c.create_project(unique("async"))
            ids = [p.id async for p in c.projects(page_size=2)]
            await project.delete()
            return me.username, [project.id, *ids]

    name, ids = asyncio.run(main())
    assert name == "admin" and ids[0] in ids[1:]
    sync_names = {n for n in dir(AsyncClient) if not n.startswith("_")}
    with Client(live_server.url, api_key=live_server.api_key) as c:
        assert sync_names <= set(dir(c))


class _Flaky(BaseHTTPRequestHandler):
    """503 for the first two GETs, then 200; POST always 503 (never to be retried)."""

    calls: ClassVar[dict[str, int]] = {}

    def _answer(self) -> None:
        n = self.calls[self.command] = self.calls.get(self.command, 0) + 1
        ok = self.command == "GET" and n > 2
        body = b'{"user": {"id": 1, "username": "x", "is_admin": false}}' if ok else \
            b'{"error": "database unavailable; retry shortly"}'
        self.send_response(200 if ok else 503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def flaky_server() -> Iterator[str]:
    _Flaky.calls = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_503_is_retried_for_idempotent_calls_only(flaky_server: str) -> None:
    with Client(flaky_server, api_key="k", retry=FAST) as c:
        assert c.me().username == "x"
        assert _Flaky.calls["GET"] == 3
        with pytest.raises(ServerError) as exc:
            c.create_project("p")
        assert exc.value.status == 503 and "retry" in exc.value.error
        assert _Flaky.calls["POST"] == 1
