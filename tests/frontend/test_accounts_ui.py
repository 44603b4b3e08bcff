"""Accounts a lab can run (issue 14, item 5), in Debian chromium: the first-run page
refuses a short password; an administrator resets a password to a temporary one
that works (the old one no longer does) and sees each account's last login."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.frontend.browser import ADMIN, ConsoleLog, LiveServer, api_call, screenshot, ui_login


def test_first_run_rule_temporary_password_last_login(
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
    page.goto("/keys")
    row = page.locator("#users tr", has_text="tech")
    expect(row).to_contain_text("never")
    page.once("dialog", lambda d: d.accept())
    row.get_by_role("button", name="Reset the password of tech").click()
    temp = page.locator("#temp-password-value")
    expect(temp).to_have_text(re.compile(r"^\S{14}$"))
    password = temp.inner_text()
    screenshot(page, "accounts-temporary-password")

    other = browser.new_context(base_url=live_server.url)
    try:
        r = other.request.post("/api/session", data={"username": "tech",
                                                      "password": "the first password"})
        assert r.status == 401
        tech_page = other.new_page()
        ui_login(tech_page, "tech", password, next_path="/keys")
        tech_page.fill("#current-password", password)
        tech_page.fill("#new-password", "my own new password")
        tech_page.click("#password-form button[type=submit]")
        expect(tech_page.locator("body")).to_contain_text("Password changed")
    finally:
        other.close()
    page.reload()
    row = page.locator("#users tr", has_text="tech")
    expect(row).not_to_contain_text("never")
    assert not console.unexpected(), console.errors
