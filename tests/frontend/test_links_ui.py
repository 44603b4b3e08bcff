"""The share-links page (a manager sees the links of their project, whoever made
them, and revokes one: the link stops working at once) and the account controls
of the keys page (issue 11)."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.frontend.browser import (
    ADMIN,
    ConsoleLog,
    LiveServer,
    api_call,
    api_setup_admin,
    ui_login,
)


def test_manager_revokes_a_link_from_the_links_page(live_server: LiveServer, context: Any,
                                                    page: Any, console: ConsoleLog) -> None:
    csrf = api_setup_admin(context)
    project = api_call(context, "POST", "/api/projects", csrf, {"name": "Shared"})
    link = api_call(context, "POST", "/api/share-links", csrf,
                    {"project_id": project["id"], "expires_in": 3600})
    assert context.request.get(f"/api/share?share={link['token']}").status == 200
    # Logging in through the page also exercises the post-login redirect.
    ui_login(page, *ADMIN, next_path="/links")
    assert page.url.endswith("/links")
    row = page.locator("#links tr", has_text=f"project {project['id']}")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("admin")
    expect(row).to_contain_text("active")
    expect(row).not_to_contain_text("never")  # used once above: its last use is shown
    page.once("dialog", lambda d: d.accept())
    row.get_by_role("button", name=f"Revoke link {link['id']}").click()
    expect(page.locator("#links")).to_contain_text("No share links.")
    page.uncheck("#only-active")
    expect(page.locator("#links tr", has_text="revoked")).to_have_count(1)
    console.expected.append("/api/share")
    assert context.request.get(f"/api/share?share={link['token']}").status == 401
    assert not console.unexpected(), console.errors


def test_accounts_from_my_account_and_users_pages(live_server: LiveServer, context: Any,
                                                 page: Any, console: ConsoleLog) -> None:
    """Change one's password; an administrator disables and re-enables a user."""
    csrf = api_setup_admin(context)
    api_call(context, "POST", "/api/users", csrf,
             {"username": "lab-user", "password": "lab-user-pass-1"})
    ui_login(page, *ADMIN, next_path="/account")
    page.fill("#current-password", ADMIN[1])
    page.fill("#new-password", "a brand new password")
    page.fill("#new-password2", "a brand new password")
    page.click("#password-form button[type=submit]")
    expect(page.locator(".toast")).to_contain_text("Password changed", timeout=30_000)
    # This page's session survives the change (other sessions end: tests/catalog).
    assert context.request.get("/api/session").status == 200
    page.goto("/users")
    row = page.locator("#users tr", has_text="lab-user")
    page.once("dialog", lambda d: d.accept())
    row.get_by_role("button", name="Disable user lab-user").click()
    expect(row).to_contain_text("disabled")
    console.expected.append("/api/session")
    r = context.request.post("/api/session",
                             data={"username": "lab-user", "password": "lab-user-pass-1"})
    assert r.status == 403
    row.get_by_role("button", name="Enable user lab-user").click()
    expect(row).to_contain_text("active")
    r = context.request.post("/api/session",
                             data={"username": "lab-user", "password": "lab-user-pass-1"})
    assert r.status == 200
    assert not console.unexpected(), console.errors
