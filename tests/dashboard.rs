//! The dashboard in a real browser: headless Chromium (Debian's
//! `chromium`, installed by `./scripts/test` through `scripts/browser`,
//! path in `LEADFLOW_TEST_CHROMIUM`) loads the dashboard of a live demo
//! with 500 reps whose API needs a read token. In English and in Chinese
//! it must render every chart from data, with no error on the page or its
//! console, a funnel of distinct leads that never rises, the whole rep
//! table, and a screenshot that is not blank (kept as a test artefact:
//! `target/tmp/artefacts/dashboard-*.png`, or `$LEADFLOW_TEST_ARTEFACTS`).
//! Without the token it asks for one; with a filter it shows that
//! filter's leads.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "read-t0ken";
const REPS: usize = 500;

/// Chromium's output: (stdout, stderr). Errors of the page are counted by
/// the page itself (`data-errors`), console errors included.
fn chromium(args: &[&str]) -> (String, String) {
    let bin = std::env::var("LEADFLOW_TEST_CHROMIUM")
        .expect("LEADFLOW_TEST_CHROMIUM is not set: run ./scripts/test, which installs chromium");
    let out = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            // Let the page's scripts fetch and draw (virtual time runs
            // ahead while the network is idle).
            "--virtual-time-budget=10000",
        ])
        .args(args)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn artefacts() -> PathBuf {
    let dir = std::env::var_os("LEADFLOW_TEST_ARTEFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("artefacts"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The value of `attr` on the element carrying `marker` (an `id="..."`).
fn attr(dom: &str, marker: &str, attr: &str) -> Option<String> {
    let start = dom.find(marker)?;
    let tag_start = dom[..start].rfind('<')?;
    let tag = &dom[tag_start..start + dom[start..].find('>')?];
    let at = tag.find(&format!("{attr}=\""))? + attr.len() + 2;
    Some(tag[at..at + tag[at..].find('"')?].to_string())
}

fn board(api: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut req = ureq::get(&format!("{api}/api/v1/board")).timeout(Duration::from_secs(10));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    match req.call() {
        Ok(r) => (r.status(), r.into_json().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or_default()),
        Err(e) => panic!("GET board: {e}"),
    }
}

/// The funnel's stages as the page drew them.
fn funnel(dom: &str) -> Vec<u64> {
    attr(dom, "id=\"funnel\"", "data-values")
        .unwrap_or_else(|| panic!("no funnel values:\n{dom}"))
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect()
}

/// A screenshot that is not blank, kept as an artefact.
fn screenshot(url: &str, name: &str) -> PathBuf {
    let shot = artefacts().join(name);
    let _ = std::fs::remove_file(&shot);
    let (_, stderr) = chromium(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1400,2400",
        url,
    ]);
    assert!(shot.exists(), "no screenshot: {stderr}");
    let decoder = png::Decoder::new(std::fs::File::open(&shot).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let pixels = &buf[..info.buffer_size()];
    let step = info.color_type.samples();
    let mut colors = std::collections::HashSet::new();
    let mut dark = 0usize;
    for px in pixels.chunks(step) {
        colors.insert(px[..3.min(px.len())].to_vec());
        if px.iter().take(3).any(|c| *c < 200) {
            dark += 1;
        }
    }
    assert!(
        colors.len() > 20,
        "a blank screenshot ({} colours)",
        colors.len()
    );
    assert!(
        dark * 100 > pixels.len() / step,
        "almost nothing drawn: {dark} dark pixels"
    );
    eprintln!("screenshot: {}", shot.display());
    shot
}

#[test]
fn the_dashboard_reads_right_in_both_languages_with_a_read_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_leadflow"))
        .current_dir(dir.path())
        .env_remove("LEADFLOW_CONFIG")
        .env_remove("LEADFLOW_API_LISTEN")
        .env("LEADFLOW_API_READ_TOKEN", TOKEN)
        .args(["demo", "--duration-s", "180", "--rate", "100"])
        .args(["--reps", &REPS.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(demo.stdout.take().unwrap());
    let mut url = None;
    let mut line = String::new();
    while url.is_none() && out.read_line(&mut line).unwrap() > 0 {
        if let Some(rest) = line.trim().strip_prefix("dashboard: ") {
            url = rest.split_whitespace().next().map(str::to_string);
        }
        line.clear();
    }
    let url = url.expect("the demo printed its dashboard URL");
    let drain = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut rest);
    });
    let api = url.trim_end_matches("/dashboard").to_string();

    // The data needs the token; wait until leads were assigned, followed
    // up and converted.
    assert_eq!(board(&api, None).0, 401);
    let deadline = Instant::now() + Duration::from_secs(60);
    let channel = loop {
        let (code, b) = board(&api, Some(TOKEN));
        assert_eq!(code, 200, "{b}");
        if b["total"]["converted"].as_u64() > Some(10) {
            break b["by_channel"]
                .as_object()
                .unwrap()
                .keys()
                .next()
                .unwrap()
                .clone();
        }
        assert!(Instant::now() < deadline, "no conversions in time: {b}");
        std::thread::sleep(Duration::from_millis(500));
    };

    for (lang, heading) in [("en", "Funnel of distinct leads"), ("zh-CN", "线索漏斗")] {
        let page = format!("{url}?lang={lang}#token={TOKEN}");
        let (dom, _) = chromium(&["--dump-dom", &page]);
        assert_eq!(
            attr(&dom, "<body", "data-rendered").as_deref(),
            Some("yes"),
            "{lang}: never rendered:\n{dom}"
        );
        assert_eq!(attr(&dom, "<body", "data-lang").as_deref(), Some(lang));
        assert_eq!(
            attr(&dom, "<body", "data-errors").as_deref(),
            Some("0"),
            "{lang}: errors on the page: {:?}",
            attr(&dom, "<body", "data-error-list")
        );
        assert!(dom.contains(heading), "{lang}: no {heading:?}");
        // A funnel of distinct leads never rises.
        let stages = funnel(&dom);
        assert_eq!(stages.len(), 4, "{stages:?}");
        assert!(stages[0] > 0 && stages[3] > 0, "{stages:?}");
        assert!(
            stages.windows(2).all(|w| w[0] >= w[1]),
            "{lang}: a rising funnel {stages:?}"
        );
        // Every chart drawn, every rep in the table (a page of them shown).
        let charts = dom.matches("data-zr-dom-id").count();
        assert!(charts >= 7, "{lang}: {charts} charts drawn");
        assert_eq!(
            attr(&dom, "id=\"reps\"", "data-reps"),
            Some(REPS.to_string())
        );
        let rows = dom
            .split("<tbody>")
            .nth(1)
            .unwrap()
            .split("</tbody>")
            .next()
            .unwrap();
        assert_eq!(rows.matches("<tr>").count(), 50, "{lang}: one page of reps");
        screenshot(&page, &format!("dashboard-{lang}.png"));
    }

    // Without the token the page asks for it, and shows no numbers.
    let (dom, _) = chromium(&["--dump-dom", &format!("{url}?lang=en")]);
    assert!(
        dom.contains("id=\"login\" class=\"shown\""),
        "no token asked for:\n{dom}"
    );
    assert_eq!(attr(&dom, "<body", "data-rendered"), None);
    assert!(dom.contains("401"), "{dom}");

    // A filter shows its leads only: one channel's funnel is part of the
    // whole's, and the page says it is filtered.
    let page = format!("{url}?lang=en&channel={channel}#token={TOKEN}");
    let (dom, _) = chromium(&["--dump-dom", &page]);
    let stages = funnel(&dom);
    assert!(stages.windows(2).all(|w| w[0] >= w[1]), "{stages:?}");
    let whole = board(&api, Some(TOKEN)).1;
    assert!(
        stages[0] > 0 && stages[0] < whole["total"]["created"].as_u64().unwrap(),
        "{channel}: {stages:?} of {}",
        whole["total"]
    );
    assert!(
        dom.contains(&format!("filtered: Channel {channel}")),
        "{dom}"
    );
    screenshot(&page, "dashboard-filtered.png");

    // A range of days with no leads shows none (the page's "to" is the
    // last day shown).
    let page = format!("{url}?lang=en&from=2000-01-01&to=2000-01-01#token={TOKEN}");
    let (dom, _) = chromium(&["--dump-dom", &page]);
    assert_eq!(attr(&dom, "<body", "data-rendered").as_deref(), Some("yes"));
    assert_eq!(funnel(&dom), vec![0, 0, 0, 0]);

    let _ = Command::new("kill")
        .args(["-INT", &demo.id().to_string()])
        .status();
    let status = demo.wait().unwrap();
    drain.join().unwrap();
    assert!(status.success(), "the demo did not stop cleanly: {status}");
}
