//! The shipped library must lint clean and pass every embedded test that needs no model.

use moat::prompts::{lint_all, run_all_tests, Lang, Library, TestStatus};

#[test]
fn every_builtin_lints_clean() {
    let lib = Library::builtin();
    let problems = lint_all(&lib);
    assert!(problems.is_empty(), "{}", problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"));
}

#[test]
fn every_builtin_embedded_test_passes() {
    let lib = Library::builtin();
    let outcomes = run_all_tests(&lib);
    let failed: Vec<String> =
        outcomes.iter().filter(|o| matches!(o.status, TestStatus::Failed(_))).map(|o| o.to_string()).collect();
    let passed = outcomes.iter().filter(|o| o.status == TestStatus::Passed).count();
    assert!(failed.is_empty(), "{} failed:\n{}", failed.len(), failed.join("\n"));
    assert!(passed > 0);
    println!("embedded prompt tests: {passed} passed, 0 failed");
}

#[test]
fn every_builtin_is_bilingual_and_tested_both_ways() {
    let lib = Library::builtin();
    let ids = lib.ids();
    assert!(ids.iter().filter(|i| i.starts_with("market/")).count() >= 14, "{ids:?}");
    assert!(ids.iter().filter(|i| i.starts_with("scripts/")).count() >= 3, "{ids:?}");
    for id in &ids {
        let p = lib.prompt(id).unwrap();
        assert_eq!(p.languages(), vec![Lang::En, Lang::Zh], "{id} needs a [locale.zh] overlay");
        assert!(p.file.title.is_some() && p.file.description.is_some(), "{id} needs title and description");
        let tests = &p.file.tests;
        assert!(tests.iter().any(|t| !t.is_mocked() && !t.requires_model), "{id} needs a render-only test");
        assert!(tests.iter().any(|t| t.is_mocked()), "{id} needs a mocked test");
        assert!(tests.iter().any(|t| t.lang.as_deref() == Some("zh")), "{id} needs a zh test");
    }
}
