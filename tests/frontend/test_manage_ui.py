"""Project management from the browser: a manager who is not an administrator
adds members by user name (the user list stays admin-only); the login page
explains throttled logins."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.frontend.browser import ConsoleLog, LiveServer, api_call, api_setup_admin, ui_login


def test_manager_adds_member_by_name(live_server: LiveServer, context: Any, page: Any,
                                     console: ConsoleLog) -> None:
    csrf = api_setup_admin(context)
    for name in ("mia", "noah"):
        api_call(context, "POST", "/api/users", csrf,
                 {"username": name, "password": f"{name}-password-1"})
    context.clear_cookies()
    # Failed logins for one name are throttled: the login page says for how long.
    for _ in range(5):
        r = context.request.post("/api/session",
                                 data={"username": "noah", "password": "guess"})
        assert r.status == 401
    console.expected.append("/api/session")
    page.goto("/login")
    page.fill("#username", "noah")
    page.fill("#password", "noah-password-1")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_have_text(
        "Too many failed attempts. Try again in 5 minutes.")
    ui_login(page, "mia", "mia-password-1")
    mia_csrf = page.evaluate("JSON.parse(localStorage.getItem('microtome.session')).csrf_token")
    project = api_call(context, "POST", "/api/projects", mia_csrf, {"name": "Mia's"})
    page.goto(f"/projects/{project['id']}")
    page.click("#members-button")
    # An unknown name: the server's 404 is shown, nothing is added.
    console.expected.append(f"/api/projects/{project['id']}/members")
    page.fill("#member-name", "nobody")
    page.click("#members-dialog button[type=submit]")
    expect(page.locator(".toast.error")).to_contain_text("no user with this name")
    expect(page.locator("#members-dialog tbody tr")).to_have_count(1)
    # The exact name, in any case, adds the member with the chosen role.
    page.fill("#member-name", "NOAH")
    page.select_option("#member-role", "contributor")
    page.click("#members-dialog button[type=submit]")
    row = page.locator("#members-dialog tbody tr", has_text="noah")
    expect(row).to_have_count(1)
    expect(row.locator("select")).to_have_value("contributor")
    members = api_call(context, "GET", f"/api/projects/{project['id']}/members", mia_csrf)
    assert sorted((m["username"], m["role"]) for m in members["items"]) == [
        ("mia", "manager"), ("noah", "contributor")]
