//! Structured output under a tight budget: tokens per character of the default model, steering a
//! grammar-constrained reply to close, and the cut-off error when it cannot.

mod common;

use moat::engine::{Engine, Event, Request};

fn count(engine: &mut Engine, text: &str) -> usize {
    let id = engine.send(|id| Request::CountTokens { id, text: text.to_string() });
    loop {
        match engine.events().recv().expect("engine alive") {
            Event::TokenCount { id: i, tokens } if i == id => return tokens,
            _ => {}
        }
    }
}

const ZH: &str = include_str!("fixtures/prompts/zh-article.txt");
const EN: &str = include_str!("fixtures/prompts/en-article.txt");

#[test]
fn measure() {
    let mut e = common::engine(512);
    let base = count(&mut e, "");
    let zh = count(&mut e, ZH) - base;
    let en = count(&mut e, EN) - base;
    let skeleton = r#"{"risks": [{"id": "R1", "category": "technical", "description": "", "likelihood": 4, "impact": 5, "mitigation": ""}, {"id": "R2", "category": "operational", "description": "", "likelihood": 3, "impact": 2, "mitigation": ""}], "summary": ""}"#;
    let js = count(&mut e, skeleton) - base;
    let compact: String = skeleton.split_whitespace().collect::<Vec<_>>().join("");
    let jc = count(&mut e, &compact) - base;
    println!("base {base}");
    println!("zh {} chars {} tokens {:.3}", ZH.chars().count(), zh, zh as f64 / ZH.chars().count() as f64);
    println!("en {} chars {} tokens {:.3}", EN.chars().count(), en, en as f64 / EN.chars().count() as f64);
    println!(
        "json {} chars {} tokens {:.3}",
        skeleton.chars().count(),
        js,
        js as f64 / skeleton.chars().count() as f64
    );
    println!("jsonc {} chars {} tokens {:.3}", compact.chars().count(), jc, jc as f64 / compact.chars().count() as f64);
}
