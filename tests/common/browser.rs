//! Headless Chromium over WebDriver (fantoccini and Debian's chromedriver) for the browser
//! tests. They run when `CS_TEST_CHROMEDRIVER` names the chromedriver binary (`.ci/run` sets
//! it) and print a notice and pass otherwise; `CS_TEST_CHROMIUM` may name the browser binary
//! (default `/usr/bin/chromium`).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use super::TempDir;

/// A running chromedriver, killed on drop, with a folder for the browsers' profiles.
pub struct Driver {
    child: Child,
    port: u16,
    profiles: TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The chromedriver named by `CS_TEST_CHROMEDRIVER`, started; `None` (with a notice) when the
/// variable is unset.
pub async fn driver() -> Option<Driver> {
    let Some(binary) = std::env::var_os("CS_TEST_CHROMEDRIVER") else {
        eprintln!("skipping the browser test: set CS_TEST_CHROMEDRIVER=/usr/bin/chromedriver");
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(binary)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some(Driver {
        child,
        port,
        profiles: TempDir::new(),
    })
}

/// A fresh headless Chromium with a profile of its own (`profile` names it), `width` x
/// `height` pixels.
pub async fn browser(driver: &Driver, profile: &str, width: u32, height: u32) -> Client {
    open(driver, profile, width, height, None).await
}

/// As [`browser`], with the browser's own language (`--lang` and the `Accept-Language` it
/// sends) set to `lang`, and no scrollbars (screenshots); the profile is named after it.
pub async fn browser_in(driver: &Driver, lang: &str, width: u32, height: u32) -> Client {
    open(driver, lang, width, height, Some(lang)).await
}

async fn open(
    driver: &Driver,
    profile: &str,
    width: u32,
    height: u32,
    lang: Option<&str>,
) -> Client {
    let chromium = std::env::var("CS_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let dir = driver.profiles.0.join(profile);
    let mut args = vec![
        "--headless".to_owned(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-background-networking".into(),
        "--disable-dev-shm-usage".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        format!("--window-size={width},{height}"),
        format!("--user-data-dir={}", dir.display()),
    ];
    let mut options = json!({ "binary": chromium });
    if let Some(lang) = lang {
        args.push("--hide-scrollbars".into());
        args.push(format!("--lang={lang}"));
        options["prefs"] = json!({ "intl.accept_languages": lang });
    }
    options["args"] = json!(args);
    let serde_json::Value::Object(caps) = json!({ "goog:chromeOptions": options }) else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a Chromium session")
}

/// The text of the first element matching `css` (empty when there is none).
pub async fn text_of(client: &Client, css: &str) -> String {
    match client.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Waits up to `within` until the text of the first element matching `css` satisfies `pred`;
/// that text.
pub async fn wait_until(
    client: &Client,
    css: &str,
    within: Duration,
    pred: impl Fn(&str) -> bool,
) -> String {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let t = text_of(client, css).await;
        if pred(&t) {
            return t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{css} never matched; last {t:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Resizes the window to `width` x `height`, lets the page settle, takes a screenshot (checked
/// to be a PNG) and keeps it as `{name}.png` in `CS_TEST_SCREENSHOTS` when that is set.
pub async fn shoot(client: &Client, name: &str, width: u32, height: u32) {
    client.set_window_size(width, height).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let png = client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    if let Some(dir) = std::env::var_os("CS_TEST_SCREENSHOTS") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

/// Waits up to 15 s for an element matching `css` whose text contains `needle`; its text.
pub async fn wait_for_text(client: &Client, css: &str, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        for el in client.find_all(Locator::Css(css)).await.unwrap_or_default() {
            if let Ok(t) = el.text().await
                && t.contains(needle)
            {
                return t;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {css} containing {needle:?} within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Types `text` into the element `input` (waiting up to 15 s for it) and clicks `send`.
pub async fn type_and_send(client: &Client, input: &str, send: &str, text: &str) {
    let field = client
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css(input))
        .await
        .expect("input present");
    field.send_keys(text).await.unwrap();
    client
        .find(Locator::Css(send))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Saves a PNG of the page as `{name}.png` in the folder `CS_TEST_SCREENSHOTS` names, if set.
pub async fn screenshot(client: &Client, name: &str) {
    if let Some(dir) = std::env::var_os("CS_TEST_SCREENSHOTS") {
        let png = client.screenshot().await.expect("a screenshot");
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}
