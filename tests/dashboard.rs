//! A browser test: headless Chromium (Debian's `chromium`, installed by
//! `./scripts/test` through `scripts/browser`, path in
//! `LEADFLOW_TEST_CHROMIUM`) loads the dashboard of a running live demo,
//! waits for its charts to render with data, and takes a screenshot that
//! must not be blank.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn chromium(args: &[&str]) -> std::process::Output {
    let bin = std::env::var("LEADFLOW_TEST_CHROMIUM")
        .expect("LEADFLOW_TEST_CHROMIUM is not set: run ./scripts/test, which installs chromium");
    Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            // Let the page's scripts fetch and draw (virtual time runs
            // ahead while the network is idle).
            "--virtual-time-budget=8000",
        ])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_dashboard_renders_charts_with_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_leadflow"))
        .current_dir(dir.path())
        .env_remove("LEADFLOW_CONFIG")
        .env_remove("LEADFLOW_API_LISTEN")
        .args(["demo", "--duration-s", "60", "--rate", "100"])
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
    // Let the engine join its group and take in some leads.
    let api = url.trim_end_matches("/dashboard").to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    loop {
        let body = ureq::get(&format!("{api}/api/v1/stats?group_by=channel"))
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
            .unwrap_or_default();
        if body.contains("\"converted\":") && !body.contains("\"rows\":{}") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no data in time: {body}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(3));

    // The DOM after the scripts ran: charts drawn, with data.
    let dom = chromium(&["--dump-dom", &url]);
    let dom = String::from_utf8_lossy(&dom.stdout).to_string();
    assert!(
        dom.contains("data-rendered=\"yes\""),
        "charts never rendered:\n{dom}"
    );
    let bars_with_data = dom
        .split("data-value=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next()?.parse::<f64>().ok())
        .filter(|v| *v > 0.0)
        .count();
    assert!(
        bars_with_data >= 10,
        "only {bars_with_data} bars with data:\n{dom}"
    );
    assert!(dom.contains("<polyline"), "no pool line chart");

    // A screenshot that is not blank.
    let shot = dir.path().join("dashboard.png");
    let result = chromium(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1280,1000",
        &url,
    ]);
    assert!(
        shot.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    let decoder = png::Decoder::new(std::fs::File::open(&shot).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let pixels = &buf[..info.buffer_size()];
    let step = info.color_type.samples();
    let mut colors = std::collections::HashSet::new();
    let mut non_white = 0usize;
    for px in pixels.chunks(step) {
        colors.insert(px[..3.min(px.len())].to_vec());
        if px.iter().take(3).any(|c| *c < 200) {
            non_white += 1;
        }
    }
    assert!(
        colors.len() > 20,
        "a blank screenshot ({} colours)",
        colors.len()
    );
    assert!(
        non_white * 100 > pixels.len() / step,
        "almost nothing drawn: {non_white} dark pixels"
    );
    // Keep it for a human to look at.
    let _ = std::fs::copy(&shot, std::env::temp_dir().join("leadflow-dashboard.png"));

    let _ = Command::new("kill")
        .args(["-INT", &demo.id().to_string()])
        .status();
    let status = demo.wait().unwrap();
    drain.join().unwrap();
    assert!(status.success(), "the demo did not stop cleanly: {status}");
}
