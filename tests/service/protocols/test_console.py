"""The console in a real headless browser (Debian's chromium driven by selenium): the page
lists the models, an uploaded digit shows its top-k, and /docs renders Swagger UI."""

from __future__ import annotations

import httpx

from tests.conftest import REPO_ROOT, ServerThread
from tests.service.protocols.conftest import REPORTS

DIGIT = REPO_ROOT / "loadtest" / "data" / "digit_3_18.png"


def test_the_summary_lists_every_model_with_its_versions(rest: httpx.Client) -> None:
    summary = rest.get("/console/summary").json()
    models = {model["name"]: model for model in summary["models"]}
    (version,) = models["mnist_dnn"]["versions"]
    assert (version["version"], version["state"], version["runtime"]) == (
        1,
        "AVAILABLE",
        "tensorflow",
    )
    assert rest.get("/").headers["content-type"].startswith("text/html")
    assert rest.get("/docs/assets/swagger-ui-bundle.js").status_code == 200


def test_an_uploaded_digit_shows_its_top_k_in_the_browser(
    browser: object, server: ServerThread
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import Select, WebDriverWait

    chrome = browser
    chrome.get(server.rest_url + "/")
    wait = WebDriverWait(chrome, 60)
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "body[data-loaded=true]")))
    rows = chrome.find_elements(By.CSS_SELECTOR, "#models tbody tr[data-model=mnist_dnn]")
    assert rows and "AVAILABLE" in rows[0].text
    Select(chrome.find_element(By.ID, "model")).select_by_value("mnist_dnn")
    chrome.find_element(By.ID, "image").send_keys(str(DIGIT))
    chrome.find_element(By.ID, "send").click()
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "#topk li.prediction")))
    labels = [
        item.get_attribute("data-label")
        for item in chrome.find_elements(By.CSS_SELECTOR, "#topk li")
    ]
    assert len(labels) == 5 and labels[0] == "3", labels
    REPORTS.mkdir(exist_ok=True)
    assert chrome.save_screenshot(str(REPORTS / "console.png"))


def test_docs_render_swagger_ui_from_the_packaged_bundle(
    browser: object, server: ServerThread
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    chrome = browser
    chrome.get(server.rest_url + "/docs")
    WebDriverWait(chrome, 60).until(
        ready.presence_of_element_located((By.CSS_SELECTOR, ".swagger-ui .info .title"))
    )
    assert chrome.find_element(By.CSS_SELECTOR, ".swagger-ui .info .title").text
    assert chrome.find_elements(By.CSS_SELECTOR, ".opblock")  # the operations are listed
    REPORTS.mkdir(exist_ok=True)
    chrome.save_screenshot(str(REPORTS / "console-docs.png"))
