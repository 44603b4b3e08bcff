"""Accounts a lab can run (issue 14), in Debian chromium: the first-run page refuses
a short password; on the Users page an administrator gives a temporary password (the
user must choose their own at the next sign-in), adds a user and makes a one-time
reset link, which the user opens to set a password and sign in; My account changes
the password and lists where one is signed in.  No console errors anywhere."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.frontend.browser import (
    ADMIN,
    ConsoleLog,
    LiveServer,
    api_call,
    screenshot,
    ui_login,
    watch_console,
)


def test_first_run_rule_temporary_password_forced_change(
        live_server: LiveServer, browser: Any, context: Any, page: Any,
        console: ConsoleLog) -> None:
    page.goto("/login")
    expect(page.locator("#login-title")).to_have_text("Create the administrator account")
    page.fill("#username", ADMIN[0])
    page.fill("#password", "x")
    page.fill("#password2", "x")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_have_text("The password needs at least 8 characters.")
    # The server says the same to a client that skips the page.
    r = context.request.post("/api/setup", data={"username": "admin", "password": "x"})
    assert r.status == 400 and "at least 8" in r.json()["error"]
    page.fill("#password", ADMIN[1])
    page.fill("#password2", ADMIN[1])
    page.click("#login-submit")
    page.wait_for_url(f"{live_server.url}/")

    csrf = context.request.get("/api/session").json()["csrf_token"]
    api_call(context, "POST", "/api/users", csrf, {"username": "tech",
                                                   "password": "the first password"})
    page.get_by_role("link", name="Users").click()
    page.wait_for_url(f"{live_server.url}/users")
    row = page.locator("#users tr", has_text="tech")
    expect(row).to_contain_text("never")
    page.once("dialog", lambda d: d.accept())
    row.get_by_role("button", name="Temporary password for tech").click()
    temp = page.locator("#temp-password-value")
    expect(temp).to_have_text(re.compile(r"^\S{14}$"))
    password = temp.inner_text()
    expect(row).to_contain_text("must change password")
    screenshot(page, "accounts-temporary-password")

    other = browser.new_context(base_url=live_server.url)
    try:
        r = other.request.post("/api/session", data={"username": "tech",
                                                      "password": "the first password"})
        assert r.status == 401
        tech_page = other.new_page()
        watch_console(tech_page, console)
        # Signed in with the temporary password, the new password comes first.
        ui_login(tech_page, "tech", password, next_path="/trash")
        tech_page.wait_for_url(re.compile(r"/account\?next="))
        expect(tech_page.locator("#must-change")).to_be_visible()
        expect(tech_page.locator("#account-more")).to_be_hidden()
        r = other.request.get("/api/projects")
        assert r.status == 403 and r.json()["detail"]["reason"] == "password_change_required"
        screenshot(tech_page, "accounts-forced-change")
        tech_page.fill("#current-password", password)
        tech_page.fill("#new-password", "my own new password")
        tech_page.fill("#new-password2", "my own new password")
        tech_page.click("#password-form button[type=submit]")
        tech_page.wait_for_url(f"{live_server.url}/trash")  # back where they were going
        assert other.request.get("/api/projects").status == 200
    finally:
        other.close()
    page.reload()
    row = page.locator("#users tr", has_text="tech")
    expect(row).not_to_contain_text("never")
    expect(row).to_contain_text("active")
    assert not console.unexpected(), console.errors


def test_reset_link_and_my_account(live_server: LiveServer, browser: Any, context: Any,
                                   page: Any, console: ConsoleLog) -> None:
    from tests.frontend.browser import api_setup_admin

    api_setup_admin(context)
    ui_login(page, *ADMIN, next_path="/users")
    page.fill("#user-name", "lena")
    page.fill("#user-password", "given by the admin")
    page.click("#user-form button[type=submit]")
    row = page.locator("#users tr", has_text="lena")
    expect(row).to_contain_text("must change password")  # the default for a new account
    page.once("dialog", lambda d: d.accept())
    row.get_by_label("Role of lena").select_option("admin")
    expect(row.get_by_label("Role of lena")).to_have_value("admin")
    page.once("dialog", lambda d: d.accept())
    row.get_by_role("button", name="Reset link for lena").click()
    link = page.locator("#reset-link-value")
    expect(link).to_have_value(re.compile(r"/reset#token=[A-Za-z0-9_-]{20,}$"))
    url = link.input_value()
    screenshot(page, "accounts-reset-link")

    other = browser.new_context(base_url=live_server.url)
    try:
        lena = other.new_page()
        watch_console(lena, console)
        lena.goto(url)
        expect(lena.locator("#reset-intro")).to_contain_text("lena")
        lena.fill("#reset-password", "short")
        lena.fill("#reset-password2", "short")
        lena.click("#reset-submit")
        expect(lena.locator("#reset-error")).to_have_text(
            "The password needs at least 8 characters.")
        lena.fill("#reset-password", "lena chose this one")
        lena.fill("#reset-password2", "lena chose this one")
        lena.click("#reset-submit")
        expect(lena.locator("#reset-done")).to_be_visible()
        assert "token" not in lena.url  # the token left the address bar
        screenshot(lena, "accounts-reset-done")
        # The link works once.
        console.expected.append("status of 404")
        lena.goto("about:blank")  # else only the fragment changes: no new page
        lena.goto(url)
        expect(lena.locator("#reset-error")).to_contain_text("not valid")
        # She signs in with it and is not asked again; My account is in the navigation.
        ui_login(lena, "lena", "lena chose this one")
        assert lena.url == f"{live_server.url}/"
        lena.get_by_role("link", name="My account").click()
        lena.wait_for_url(f"{live_server.url}/account")
        expect(lena.locator("#account-info")).to_contain_text("lena · administrator")
        expect(lena.locator("#sessions")).to_contain_text("this browser")
        lena.fill("#current-password", "lena chose this one")
        lena.fill("#new-password", "and now another one")
        lena.fill("#new-password2", "and now another one")
        lena.click("#password-form button[type=submit]")
        # argon2 twice on a loaded machine: allow it time (the toast stays 2.5 s).
        expect(lena.locator(".toast")).to_contain_text("Password changed", timeout=30_000)
        screenshot(lena, "accounts-my-account")
        r = other.request.post("/api/session", data={"username": "lena",
                                                      "password": "and now another one"})
        assert r.status == 200
        # Sign out everywhere: back to the login page, the session is gone.
        lena.goto("/account")
        lena.once("dialog", lambda d: d.accept())
        lena.click("#sign-out-everywhere")
        lena.wait_for_url(re.compile(r"/login"))
        assert other.request.get("/api/session").status == 401
    finally:
        other.close()
    assert not console.unexpected(), console.errors
