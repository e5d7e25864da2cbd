use super::*;

#[test]
fn parses_commands_and_arguments() {
    assert_eq!(parse("/quit"), Some(Ok(SlashCommand::Quit)));
    assert_eq!(parse("/system  Be brief.  "), Some(Ok(SlashCommand::System("Be brief.".into()))));
    assert_eq!(parse("/set temp 0.2"), Some(Ok(SlashCommand::Set(Setting::Temperature(0.2)))));
    assert_eq!(parse("/set seed -1"), Some(Ok(SlashCommand::Set(Setting::Seed(-1)))));
    assert_eq!(parse("/copy 2"), Some(Ok(SlashCommand::Copy(Some(2)))));
    assert_eq!(parse("/model ./m.gguf"), Some(Ok(SlashCommand::Model(Some("./m.gguf".into())))));
    assert_eq!(parse("/model  "), Some(Ok(SlashCommand::Model(None))));
    assert_eq!(parse("/edit"), Some(Ok(SlashCommand::Edit(None))));
    assert_eq!(
        parse("/edit  Tell me about horses "),
        Some(Ok(SlashCommand::Edit(Some("Tell me about horses".into()))))
    );
}

#[test]
fn text_that_is_not_a_command_is_left_alone() {
    assert_eq!(parse("hello /quit"), None);
    assert_eq!(parse("//etc/hosts is a path"), None);
    assert_eq!(parse("/"), None);
}

#[test]
fn mistakes_say_what_to_type() {
    let err = |s: &str| parse(s).unwrap().unwrap_err().to_string();
    assert!(err("/frobnicate").contains("/help"));
    assert!(err("/set temp").contains("/set temp 0.2"));
    assert!(err("/set temp -1").contains("≥ 0"));
    assert!(err("/set top_p 2").contains("0..1"));
    assert!(err("/set warmth 1").contains("top_k"));
    assert!(err("/copy zero").contains("code block"));
    assert!(err("/save").contains("a name"));
}

#[test]
fn completes_names_and_settings() {
    assert_eq!(complete("/se"), vec!["set", "sessions", "search"]);
    assert_eq!(complete("/set to"), vec!["top_k", "top_p"]);
    assert!(complete("hello").is_empty());
    assert_eq!(complete("/").len(), COMMANDS.len());
}

#[test]
fn settings_apply_to_sampling() {
    let mut s = crate::config::SamplingConfig::default();
    Setting::MaxTokens(12).apply(&mut s);
    Setting::Temperature(0.0).apply(&mut s);
    assert_eq!((s.max_tokens, s.temperature), (12, 0.0));
}

#[test]
fn classify_and_chat_commands() {
    assert_eq!(parse("/classify"), Some(Ok(SlashCommand::Classify(None))));
    assert_eq!(
        parse("/classify bullish, bearish ,neutral"),
        Some(Ok(SlashCommand::Classify(Some(vec!["bullish".into(), "bearish".into(), "neutral".into()]))))
    );
    assert!(parse("/classify solo").unwrap().unwrap_err().to_string().contains("two labels"));
    assert_eq!(parse("/chat"), Some(Ok(SlashCommand::Chat)));
}

#[test]
fn branches_search_and_open() {
    assert_eq!(parse("/branches"), Some(Ok(SlashCommand::Branches(None))));
    assert_eq!(parse("/branches 2"), Some(Ok(SlashCommand::Branches(Some(2)))));
    assert_eq!(parse("/search  营销 策略 "), Some(Ok(SlashCommand::Search("营销 策略".into()))));
    assert_eq!(parse("/open 3"), Some(Ok(SlashCommand::Open(3))));
    let err = |s: &str| parse(s).unwrap().unwrap_err().to_string();
    assert!(err("/branches 0").contains("branch number"));
    assert!(err("/branches two").contains("branch number"));
    assert!(err("/search").contains("/search pricing"));
    assert!(err("/open").contains("/open 1"));
    assert!(err("/open -1").contains("hit number"));
    assert_eq!(complete("/br"), vec!["branches"]);
}
