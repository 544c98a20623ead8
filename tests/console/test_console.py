"""The web console in a real browser: queues appear as stomp.py sends to them, a queue's page
peeks at its messages and changes its settings, dead letters say why they died and are
redriven, purge and delete ask first, the send form and the connections page work, a phone
gets cards, and no page logs a console error. A screenshot of each page goes to
target/test-output/console/."""

import stomp
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from conftest import WAIT, unique
from helpers import (Recorder, disconnect_and_wait, send_and_confirm, subscribe_and_confirm,
                     wait_event)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def stomp_client(broker):
    opened = []

    def connect():
        conn = stomp.Connection12([(broker.host, broker.port)])
        rec = Recorder()
        conn.set_listener("rec", rec)
        conn.connect("guest", "guest", wait=True)
        wait_event(rec.connected, "CONNECTED")
        opened.append((conn, rec))
        return conn, rec

    yield connect
    for conn, rec in opened:
        if conn.is_connected():
            disconnect_and_wait(conn, rec)


def wait(driver, condition, what):
    return WebDriverWait(driver, WAIT).until(condition, message="waited for " + what)


def row(driver, attr, value):
    return driver.find_element(By.CSS_SELECTOR, '[data-%s="%s"]' % (attr, value))


def cells(driver, attr, value):
    """The row's cells by column label."""
    return {td.get_attribute("data-label"): td.text
            for td in row(driver, attr, value).find_elements(By.TAG_NAME, "td")}


def has_cells(attr, value, **want):
    """A wait condition: the row exists and its cells (by label, `_` for space) read `want`."""

    def check(driver):
        try:
            got = cells(driver, attr, value)
        except Exception:
            return False
        return all(got.get(k.replace("_", " ")) == v for k, v in want.items())

    return check


def confirm(driver, accept):
    dialog = wait(driver, EC.visibility_of_element_located((By.ID, "confirm")), "the confirmation")
    # Cancel has the focus, so a stray Enter never confirms.
    assert driver.switch_to.active_element.get_attribute("id") == "confirm-cancel"
    dialog.find_element(By.ID, "confirm-ok" if accept else "confirm-cancel").click()
    wait(driver, EC.invisibility_of_element_located((By.ID, "confirm")), "the dialog to close")


def open_page(driver, broker, fragment):
    """A fresh load (a change of fragment alone would keep the last test's page state)."""
    driver.get("about:blank")
    driver.get(broker.http + "/#" + fragment)


def test_a_queue_appears_live_and_its_page_peeks(driver, broker, stomp_client, shots, console_log):
    name = unique("console.orders")
    open_page(driver, broker, "/queues")
    wait(driver, EC.visibility_of_element_located((By.ID, "prefix")), "the queue table")
    driver.find_element(By.ID, "prefix").send_keys(name)
    conn, rec = stomp_client()
    send_and_confirm(conn, rec, "/queue/" + name, '{"id": 1}', **{"x-order": "A-1"})
    send_and_confirm(conn, rec, "/queue/" + name, "second")
    # No reload: the table refreshes by itself.
    wait(driver, has_cells("queue", name, Waiting="2", In_flight="0", Consumers="0"),
         "the new queue with 2 waiting")
    assert row(driver, "queue", name).find_element(By.CSS_SELECTOR, "svg.spark")
    shots(driver, "queues")

    row(driver, "queue", name).find_element(By.LINK_TEXT, name).click()
    wait(driver, EC.text_to_be_present_in_element((By.ID, "messages"), '{"id": 1}'), "the peek")
    first = driver.find_elements(By.CSS_SELECTOR, "#messages tbody tr")[0]
    assert first.find_element(By.CSS_SELECTOR, '[data-label="Deliveries"]').text == "0"
    first.find_element(By.TAG_NAME, "summary").click()
    assert "x-order" in first.text and "A-1" in first.text
    assert driver.find_element(By.ID, "stat-visible").text == "2"
    assert driver.find_element(By.ID, "set-retention_s").get_attribute("value")
    shots(driver, "queue")

    # Consumers show up on the page without a reload.
    sub = unique("sub")
    subscribe_and_confirm(conn, rec, "/queue/" + name, sub, ack="client-individual",
                          **{"prefetch-count": "1"})
    wait(driver, EC.text_to_be_present_in_element((By.ID, "subscriptions"), sub), "the consumer")
    wait(driver, EC.text_to_be_present_in_element((By.ID, "stat-in-flight"), "1"), "1 in flight")


def test_filter_and_pages(driver, broker, stomp_client, console_log):
    prefix = unique("console.many") + "."
    conn, rec = stomp_client()
    for i in range(55):
        conn.send("/queue/%s%02d" % (prefix, i), "m")
    send_and_confirm(conn, rec, "/queue/%s%02d" % (prefix, 54), "last")
    open_page(driver, broker, "/queues")
    box = wait(driver, EC.element_to_be_clickable((By.ID, "prefix")), "the filter")
    # Keyboard only: the filter is reached and used without the mouse.
    box.clear()
    box.send_keys(prefix)
    # The filter applies once typing pauses; the caption says when it has.
    wait(driver, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "#queues caption"), prefix),
         "the filtered table")
    wait(driver, EC.presence_of_element_located(
        (By.CSS_SELECTOR, '[data-queue="%s00"]' % prefix)), "the first page")
    assert len(driver.find_elements(By.CSS_SELECTOR, "#queues tbody tr")) == 50
    wait(driver, EC.element_to_be_clickable((By.ID, "next-page")), "a next page").send_keys(Keys.ENTER)
    wait(driver, EC.presence_of_element_located(
        (By.CSS_SELECTOR, '[data-queue="%s54"]' % prefix)), "the second page")
    assert len(driver.find_elements(By.CSS_SELECTOR, "#queues tbody tr")) == 5
    assert not driver.find_element(By.ID, "next-page").is_enabled()
    driver.find_element(By.ID, "prev-page").click()
    wait(driver, EC.presence_of_element_located(
        (By.CSS_SELECTOR, '[data-queue="%s00"]' % prefix)), "the first page again")


def test_dead_letters_say_why_and_are_redriven(driver, broker, stomp_client, shots, console_log):
    name = unique("console.pay")
    dlq = "DLQ." + name
    conn, rec = stomp_client()
    send_and_confirm(conn, rec, "/queue/" + name, "poison")
    subscribe_and_confirm(conn, rec, "/queue/" + name, "s1", ack="client-individual")
    frame = rec.next_message()
    conn.nack(frame.headers["ack"], requeue="false")
    conn.unsubscribe("s1")

    open_page(driver, broker, "/dlq")
    wait(driver, has_cells("queue", dlq, Waiting="1"), "the DLQ in the dead-letter list")
    row(driver, "queue", dlq).find_element(By.LINK_TEXT, dlq).click()
    wait(driver, EC.text_to_be_present_in_element((By.ID, "dead-messages"), "poison"), "the dead letter")
    message = driver.find_element(By.CSS_SELECTOR, "#dead-messages tbody tr")
    got = {td.get_attribute("data-label"): td.text for td in message.find_elements(By.TAG_NAME, "td")}
    assert got["Came from"] == "/queue/" + name
    assert got["Why it died"] not in ("", "–")
    # Counted afresh in the DLQ: it has not been delivered from there.
    assert got["Deliveries"] == "0"
    shots(driver, "dead-letters")

    message.find_element(By.CSS_SELECTOR, "input.pick").click()
    driver.find_element(By.ID, "redrive-selected").click()
    wait(driver, EC.text_to_be_present_in_element((By.ID, "redrive-result"), "Moved 1"), "the redrive")
    wait(driver, EC.text_to_be_present_in_element((By.ID, "dead-messages"), "No waiting messages"),
         "the DLQ emptied")
    subscribe_and_confirm(conn, rec, "/queue/" + name, "s2", ack="auto")
    assert rec.next_message().body == "poison"


def test_settings_are_edited(driver, broker, stomp_client, console_log):
    name = unique("console.settings")
    conn, rec = stomp_client()
    send_and_confirm(conn, rec, "/queue/" + name, "x")
    open_page(driver, broker, "/queues/" + name)
    field = wait(driver, EC.visibility_of_element_located((By.ID, "set-max_deliveries")), "the settings")
    field.clear()
    field.send_keys("7")
    driver.find_element(By.ID, "save-settings").click()
    wait(driver, EC.text_to_be_present_in_element((By.ID, "settings-result"), "Saved: max_deliveries"),
         "the save")
    status, detail = broker.api("GET", "/queues/" + name)
    assert detail["settings"]["max_deliveries"] == 7
    # Blank is null: no cap on the redelivery delay.
    field = driver.find_element(By.ID, "set-redelivery_delay_max_s")
    field.send_keys("60")
    driver.find_element(By.ID, "save-settings").click()
    wait(driver, EC.text_to_be_present_in_element((By.ID, "settings-result"),
                                                  "Saved: redelivery_delay_max_s"), "the cap")
    assert broker.api("GET", "/queues/" + name)[1]["settings"]["redelivery_delay_max_s"] == 60
    driver.find_element(By.ID, "set-redelivery_delay_max_s").clear()
    driver.find_element(By.ID, "save-settings").click()
    wait(driver, lambda d: broker.api("GET", "/queues/" + name)[1]["settings"]
         ["redelivery_delay_max_s"] is None, "the cap removed")

    # The API's refusal is shown as it came, {error, message}.
    console_log.allow("/api/queues/" + name)
    driver.find_element(By.ID, "set-retention_s").clear()
    driver.find_element(By.ID, "set-retention_s").send_keys("-5")
    # Past the form's own check, to see the API's.
    driver.execute_script("document.getElementById('set-retention_s').removeAttribute('min')")
    driver.find_element(By.ID, "save-settings").click()
    wait(driver, EC.text_to_be_present_in_element((By.ID, "errors"), "(400)"), "the API error")


def test_purge_and_delete_ask_first(driver, broker, stomp_client, shots, console_log):
    name = unique("console.purge")
    conn, rec = stomp_client()
    for body in ("a", "b", "c"):
        send_and_confirm(conn, rec, "/queue/" + name, body)
    open_page(driver, broker, "/queues/" + name)
    wait(driver, EC.text_to_be_present_in_element((By.ID, "stat-visible"), "3"), "3 waiting")
    driver.find_element(By.ID, "purge").click()
    shots(driver, "confirm-purge")
    confirm(driver, accept=False)
    assert broker.api("GET", "/queues/" + name)[1]["visible"] == 3
    driver.find_element(By.ID, "purge").click()
    confirm(driver, accept=True)
    wait(driver, EC.text_to_be_present_in_element((By.ID, "stat-visible"), "0"), "the purge")
    assert broker.api("GET", "/queues/" + name)[1]["visible"] == 0

    driver.find_element(By.ID, "delete").click()
    confirm(driver, accept=False)
    assert broker.api("GET", "/queues/" + name)[0] == 200
    driver.find_element(By.ID, "delete").click()
    confirm(driver, accept=True)
    wait(driver, EC.url_matches(r"#/queues$"), "the queue list after the delete")
    assert broker.api("GET", "/queues/" + name)[0] == 404


def test_send_form(driver, broker, stomp_client, shots, console_log):
    name = unique("console.sent")
    open_page(driver, broker, "/send")
    wait(driver, EC.visibility_of_element_located((By.ID, "send-destination")), "the form")
    driver.find_element(By.ID, "send-destination").send_keys("/queue/" + name)
    driver.find_element(By.ID, "send-headers").send_keys("x-from: console\ncontent-type: text/plain")
    driver.find_element(By.ID, "send-body").send_keys("hello from the form")
    shots(driver, "send")
    driver.find_element(By.ID, "send-submit").click()
    wait(driver, EC.text_to_be_present_in_element((By.ID, "send-result"), "Sent to"), "the send")
    conn, rec = stomp_client()
    subscribe_and_confirm(conn, rec, "/queue/" + name, "s", ack="auto")
    frame = rec.next_message()
    assert frame.body == "hello from the form"
    assert frame.headers["x-from"] == "console"


def test_connections_are_listed_and_closed(driver, broker, stomp_client, shots, console_log):
    conn, rec = stomp_client()
    sub = unique("console.conn")
    subscribe_and_confirm(conn, rec, "/queue/" + sub, "watch")
    open_page(driver, broker, "/connections")
    wait(driver, EC.text_to_be_present_in_element((By.ID, "connections"), "/queue/" + sub),
         "the stomp.py connection")
    shots(driver, "connections")
    line = [r for r in driver.find_elements(By.CSS_SELECTOR, "#connections tbody tr")
            if "/queue/" + sub in r.text][0]
    session = line.get_attribute("data-connection")
    line.find_element(By.TAG_NAME, "button").click()
    confirm(driver, accept=False)
    assert conn.is_connected()
    line.find_element(By.TAG_NAME, "button").click()
    confirm(driver, accept=True)
    wait_event(rec.disconnected, "the operator's close")
    wait(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, '[data-connection="%s"]' % session),
         "the closed connection to leave the list")


def test_api_errors_are_shown(driver, broker, console_log):
    name = unique("console.missing")
    console_log.allow("/api/queues/" + name)
    open_page(driver, broker, "/dlq/" + name)
    wait(driver, EC.text_to_be_present_in_element((By.ID, "errors"), "NotFound"), "the error")
    assert "(404)" in driver.find_element(By.ID, "errors").text
    assert name in driver.find_element(By.ID, "errors").text


def test_a_phone_gets_cards(driver, broker, stomp_client, shots, console_log):
    name = unique("console.phone")
    conn, rec = stomp_client()
    send_and_confirm(conn, rec, "/queue/" + name, "m")
    driver.set_window_size(390, 844)
    try:
        open_page(driver, broker, "/queues")
        box = wait(driver, EC.element_to_be_clickable((By.ID, "prefix")), "the filter")
        box.send_keys(name)
        wait(driver, has_cells("queue", name, Waiting="1"), "the queue")
        head = driver.find_element(By.CSS_SELECTOR, "#queues thead")
        assert not head.is_displayed()
        width = driver.execute_script("return document.documentElement.scrollWidth")
        assert width <= 390, "the page scrolls sideways on a phone (%s px)" % width
        shots(driver, "queues-phone")
    finally:
        driver.set_window_size(1280, 900)
