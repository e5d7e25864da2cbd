use super::*;
use crate::cli::Cli;
use crate::commands::{parse, SlashCommand};
use crate::config::Config;
use clap::{CommandFactory, Parser};
use std::path::Path;

/// Values to try on every knob, as a `/set` word and as the same value in TOML. Numbers cover each
/// range's edges and the types' (negative, fractional, past `u32::MAX`, NaN, infinity); a list
/// knob gets strings, the empty one among them.
fn probes(knob: &Knob) -> Vec<(String, String)> {
    if knob.list {
        return ["###", "", "User:", "两个字"].iter().map(|w| (format!("{w:?}"), format!("[{w:?}]"))).collect();
    }
    [
        "-2",
        "-1",
        "-0.5",
        "0",
        "0.05",
        "0.5",
        "1",
        "1.5",
        "2",
        "64",
        "1e3",
        "4294967295",
        "4294967296",
        "nan",
        "inf",
        "-inf",
    ]
    .iter()
    .map(|w| (w.to_string(), w.to_string()))
    .collect()
}

/// The config's verdict on `key = literal` under `[sampling]`: the value, or the error text.
fn config_verdict(key: &str, literal: &str) -> Result<SamplingConfig, String> {
    let text = format!("[sampling]\n{key} = {literal}\n");
    let c = Config::parse_file(Path::new("u.toml"), text.as_bytes()).map_err(|e| e.to_string())?;
    c.validate().map_err(|e| e.to_string())?;
    Ok(c.sampling)
}

/// `/set`'s verdict on `/set NAME WORD`, applied to the default sampling.
fn set_verdict(name: &str, word: &str) -> Result<SamplingConfig, String> {
    match parse(&format!("/set {name} {word}")) {
        Some(Ok(SlashCommand::Set(s))) => {
            let mut base = SamplingConfig::default();
            s.apply(&mut base);
            Ok(base)
        }
        Some(Err(e)) => Err(e.to_string()),
        other => panic!("/set {name} {word} parsed as {other:?}"),
    }
}

#[test]
fn set_and_config_accept_the_same_names_and_ranges_with_the_same_messages() {
    for knob in KNOBS {
        let names: Vec<&str> = [knob.key, knob.set_name].into_iter().chain(knob.set_aliases.iter().copied()).collect();
        for (word, literal) in probes(knob) {
            let config = config_verdict(knob.key, &literal);
            for name in &names {
                let set = set_verdict(name, &word);
                match (&config, &set) {
                    (Ok(c), Ok(s)) => assert_eq!(c, s, "{name} {word}"),
                    (Err(c), Err(s)) => {
                        assert_eq!(s, &format!("/set {name} {word}: expected {}", knob.rule));
                        // A value of the wrong type is a TOML error (with line and column); one of
                        // the right type but out of range gets the knob's rule, word for word.
                        if !c.starts_with("u.toml:") {
                            assert_eq!(c, &format!("config key `sampling.{}` must be {}", knob.key, knob.rule));
                        }
                    }
                    _ => panic!("{name} = {word}: config says {config:?}, /set says {set:?}"),
                }
            }
        }
    }
}

#[test]
fn flags_and_prompt_files_refuse_what_the_config_refuses_with_the_same_rule() {
    for knob in KNOBS {
        for (word, literal) in probes(knob) {
            let config = config_verdict(knob.key, &literal);
            // The flag's value is the bare word (a shell has already removed any quotes), joined
            // with `=` so that `-inf` is read as a value, not as flags.
            let bare = if knob.list { shlex::split(&word).unwrap().remove(0) } else { word.clone() };
            let flag = Cli::try_parse_from(["moat", &format!("--{}={bare}", knob.flag), "config", "path"]);
            let prompt_file = toml::from_str::<SamplingOverrides>(&format!("{} = {literal}", knob.key));
            match &config {
                Ok(c) => {
                    let flag = flag.unwrap_or_else(|e| panic!("--{} {bare}: {e}", knob.flag));
                    assert_eq!(&flag.model.sampling.apply_to(&SamplingConfig::default()), c, "--{} {bare}", knob.flag);
                    let p = prompt_file.unwrap_or_else(|e| panic!("{} = {literal}: {e}", knob.key));
                    assert_eq!(&p.apply_to(&SamplingConfig::default()), c);
                }
                Err(c) => {
                    let e = flag.expect_err(&format!("--{} {bare} is refused", knob.flag)).to_string();
                    assert!(e.contains(&format!("expected {}", knob.rule)), "--{} {bare}: {e}", knob.flag);
                    let e = prompt_file.expect_err(&format!("{} = {literal} is refused", knob.key)).to_string();
                    if !c.starts_with("u.toml:") {
                        assert!(e.contains(&format!("`{}` must be {}", knob.key, knob.rule)), "{e}");
                    }
                }
            }
        }
    }
}

#[test]
fn the_config_section_is_exactly_the_table() {
    let table = toml::Value::try_from(SamplingConfig::default()).unwrap();
    let keys: Vec<&str> = table.as_table().unwrap().keys().map(String::as_str).collect();
    let mut want: Vec<&str> = KNOBS.iter().map(|k| k.key).collect();
    want.sort_unstable();
    let mut got = keys.clone();
    got.sort_unstable();
    assert_eq!(got, want);
    assert_eq!(Setting::NAMES, KNOBS.iter().map(|k| k.set_name).collect::<Vec<_>>());
    assert_eq!(SET_NAMES, Setting::NAMES.join(", "));
    let shown: Vec<&str> = SamplingConfig::default().settings().iter().map(|s| s.name()).collect();
    assert_eq!(shown, Setting::NAMES);
    for knob in KNOBS {
        for name in [knob.key, knob.set_name].iter().chain(knob.set_aliases) {
            assert_eq!(Knob::find(name), Some(knob), "{name}");
        }
    }
}

#[test]
fn every_sampling_flag_has_help_text() {
    let cmd = Cli::command();
    for knob in KNOBS {
        let arg = cmd.get_arguments().find(|a| a.get_id() == knob.key).unwrap_or_else(|| panic!("{}", knob.key));
        assert_eq!(arg.get_long(), Some(knob.flag));
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        assert!(help.len() > 10 && help == knob.help, "--{}: {help:?}", knob.flag);
    }
    // The flags are global: after a subcommand too.
    let cli =
        Cli::try_parse_from(["moat", "ask", "--temp", "0.2", "-n", "7", "--stop", "a", "--stop", "b", "hi"]).unwrap();
    assert_eq!(cli.model.sampling.temperature, Some(0.2));
    assert_eq!(cli.model.sampling.max_tokens, Some(7));
    assert_eq!(cli.model.sampling.stop, Some(vec!["a".to_string(), "b".to_string()]));
    assert!(Cli::try_parse_from(["moat", "--temperature", "1", "ask"]).is_err(), "the flag is --temp only");
}

#[test]
fn layers_stack_flags_over_step_over_script_over_prompt_file_over_config() {
    let file = SamplingOverrides {
        temperature: Some(0.9),
        top_k: Some(5),
        seed: Some(1),
        max_tokens: Some(500),
        ..Default::default()
    };
    let script = SamplingOverrides { top_k: Some(6), seed: Some(2), ..Default::default() };
    let step = SamplingOverrides { seed: Some(3), stop: Some(vec!["END".into()]), ..Default::default() };
    let flags = SamplingOverrides { temperature: Some(0.0), ..Default::default() };
    let merged =
        Layers { prompt_file: Some(&file), script: Some(&script), step: Some(&step), flags: Some(&flags) }.merged();
    let config = SamplingConfig::default();
    let s = merged.apply_to(&config);
    assert_eq!((s.temperature, s.top_k, s.seed, s.max_tokens), (0.0, 6, 3, 500));
    assert_eq!(s.stop, vec!["END".to_string()]);
    assert_eq!((s.top_p, s.repeat_last_n), (config.top_p, config.repeat_last_n));
    assert_eq!(Layers::default().merged(), SamplingOverrides::default());
}

#[test]
fn set_reads_lists_as_shell_words_and_an_empty_list_clears() {
    let set = |line: &str| match parse(line) {
        Some(Ok(SlashCommand::Set(s))) => s,
        other => panic!("{line}: {other:?}"),
    };
    assert_eq!(set(r#"/set stop "User:" '##  #'"#), Setting::Stop(vec!["User:".into(), "##  #".into()]));
    assert_eq!(set("/set stop"), Setting::Stop(Vec::new()));
    assert_eq!(set("/set n 12"), Setting::MaxTokens(12));
    assert_eq!(set("/set temperature 0.3").name(), "temp");
    assert_eq!(set("/set stop a").value(), r#"["a"]"#);
    let err = |line: &str| parse(line).unwrap().unwrap_err().to_string();
    assert!(err("/set temp 0.2 0.3").contains("expected a number ≥ 0"), "{}", err("/set temp 0.2 0.3"));
    assert!(err("/set stop \"open").contains("/set stop \"open: expected"), "{}", err("/set stop \"open"));
    assert!(err("/set repeat_last 3").contains("repeat_last_n"), "{}", err("/set repeat_last 3"));
}

#[test]
fn prompt_file_model_tables_refuse_unknown_keys() {
    let e = toml::from_str::<SamplingOverrides>("temp = 0.2").unwrap_err().to_string();
    assert!(e.contains("temp"), "{e}");
    let o: SamplingOverrides = toml::from_str("stop = [\"###\"]\nrepeat_last_n = 0").unwrap();
    assert_eq!(o.stop, Some(vec!["###".to_string()]));
    assert_eq!(toml::to_string(&o).unwrap(), "repeat_last_n = 0\nstop = [\"###\"]\n");
}
