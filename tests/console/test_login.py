"""The console in `auth.mode = "users"`: the API's 401 opens the console's own login form (never
the browser's Basic prompt, which would block the page), a wrong password asks again with the
API's message, the right one shows the queues, and logging out forgets the credentials."""

import base64

import pytest
import stomp
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from conftest import console_errors, make_driver, start_broker, unique
from test_console import open_page, wait

PASSWORD = "console-secret"


@pytest.fixture(scope="module")
def users_broker(tmp_path_factory):
    b = start_broker(tmp_path_factory, lambda p: """
[auth]
mode = "users"
[auth.users.operator]
password_hash = "%s"
""" % p.passwd(PASSWORD))
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def fresh_driver():
    # Its own browser, so no other test's stored credentials are in play.
    d = make_driver()
    try:
        yield d
    finally:
        d.quit()


def log_in(driver, user, password):
    dialog = wait(driver, EC.visibility_of_element_located((By.ID, "login")), "the login form")
    dialog.find_element(By.ID, "login-user").clear()
    dialog.find_element(By.ID, "login-user").send_keys(user)
    dialog.find_element(By.ID, "login-password").send_keys(password)
    dialog.find_element(By.ID, "login-submit").click()


def test_login_form_in_users_mode(fresh_driver, users_broker, shots):
    driver = fresh_driver
    name = unique("console.secured")
    users_broker.auth = "Basic " + base64.b64encode(("operator:" + PASSWORD).encode()).decode()
    conn = stomp.Connection12([(users_broker.host, users_broker.port)])
    conn.connect("operator", PASSWORD, wait=True)
    conn.send("/queue/" + name, "m", receipt="sent")
    conn.disconnect(receipt="bye")

    open_page(driver, users_broker, "/queues")
    wait(driver, EC.text_to_be_present_in_element((By.ID, "login-why"), "HTTP Basic"),
         "the API's reason in the login form")
    shots(driver, "login")
    log_in(driver, "operator", "wrong")
    wait(driver, EC.visibility_of_element_located((By.ID, "login")), "the form again")
    log_in(driver, "operator", PASSWORD)
    wait(driver, EC.presence_of_element_located((By.CSS_SELECTOR, '[data-queue="%s"]' % name)),
         "the queues once logged in")
    assert driver.find_element(By.ID, "logout").is_displayed()

    driver.find_element(By.ID, "logout").click()
    wait(driver, EC.visibility_of_element_located((By.ID, "login")), "the form after logging out")
    assert driver.execute_script("return sessionStorage.length") == 0
    severe = console_errors(driver, ["status of 401"])
    assert not severe, severe
