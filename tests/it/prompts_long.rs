//! Long documents through the prompt library on the default model: map-reduce over chunks, evidence
//! ids that moat assigned, and Ctrl+C in the middle of the map step.

use crate::common::{fixture, moat, stderr as err, Sandbox};
use std::io::{BufRead, BufReader};
use std::process::Stdio;

fn doc(name: &str) -> String {
    std::fs::read_to_string(match name {
        "en" => fixture!("longdoc/small-en.md"),
        _ => fixture!("longdoc/small-zh.md"),
    })
    .unwrap()
}

#[test]
fn a_long_document_is_map_reduced_and_cites_only_real_ids() {
    let s = Sandbox::new();
    let args = [
        "run",
        "market/swot",
        "-v",
        "subject=ClaimPilot",
        "-c",
        "2048",
        "--chunk-tokens",
        "300",
        "--temp",
        "0",
        "--as",
        "trace",
    ];
    let o = moat(&s, &args, doc("en"));
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let trace: serde_json::Value = serde_json::from_slice(&o.stdout).expect("a JSON trace");
    let long = &trace["long_input"];
    let chunks = long["chunks"].as_array().expect("the input was map-reduced");
    assert!(chunks.len() >= 4, "{} chunks", chunks.len());
    assert!(chunks.iter().all(|c| c["tokens"].as_u64().unwrap() <= 300 + 48), "{long}");
    assert!(long["facts_extracted"].as_u64().unwrap() > 0, "{long}");
    let ids: Vec<&str> = trace["sources"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), chunks.len());
    let step = &trace["steps"][0];
    for id in step["cited"].as_array().unwrap() {
        assert!(ids.contains(&id.as_str().unwrap()), "{id} is not one of {ids:?}");
    }
    // Every evidence list in the reply holds only real ids, and the input showed the facts behind them.
    let json = &step["json"];
    for quadrant in ["strengths", "weaknesses", "opportunities", "threats"] {
        for point in json[quadrant].as_array().unwrap() {
            for id in point["evidence"].as_array().unwrap() {
                assert!(ids.contains(&id.as_str().unwrap()), "{id}: {json}");
            }
        }
    }
    assert!(step["user"].as_str().unwrap().contains("- [c"), "{}", step["user"]);
    assert!(err(&o).contains("map: 0/"), "a log says when the map starts: {}", err(&o));
}

#[cfg(unix)]
#[test]
fn ctrl_c_mid_map_stops_and_says_how_far_it_got() {
    let s = Sandbox::new();
    let path = s.path("article.md");
    std::fs::write(&path, doc("zh")).unwrap();
    let mut c = s.moat();
    c.args(["run", "market/swot", "-v", "subject=智理赔", "-c", "2048", "--chunk-tokens", "100", "--input"])
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("moat ended before the map started: {seen}");
        }
        seen.push_str(&line);
        if line.contains("map: 0/") {
            break;
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(1500));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{seen}{rest}");
    let total: usize = seen.split("map: 0/").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    let line = rest.lines().find(|l| l.contains("interrupted after")).unwrap_or_else(|| panic!("{seen}{rest}"));
    assert!(line.ends_with(&format!("of {total} chunks")), "{line}");
    assert!(out.stdout.is_empty(), "nothing half-done on stdout");
}
