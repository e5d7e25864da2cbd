use super::*;

fn session(dir: &std::path::Path) -> ChatSession {
    let mut config = Config::default();
    config.chat.system_prompt = "Be brief.".into();
    ChatSession::new(&config, Some(SessionStore::open(dir).unwrap()))
}

fn reply(s: &mut ChatSession, text: &str) {
    s.reply_done(text.into(), StopReason::EndOfGeneration, GenStats::default());
}

fn note(o: &[Outcome]) -> String {
    o.iter()
        .filter_map(|o| match o {
            Outcome::Note(t) | Outcome::Error(t) => Some(t.clone()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn texts(s: &ChatSession) -> Vec<&str> {
    s.conversation.messages.iter().map(|m| m.content.as_str()).collect()
}

#[test]
fn regen_twice_makes_three_branches_and_branches_n_switches() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path());
    s.user_turn("Name a fruit.".into());
    reply(&mut s, "Apple.");
    let first = s.execute(SlashCommand::Regen, false);
    assert!(matches!(first[0], Outcome::Reset), "{first:?}");
    assert!(note(&first).contains("/branches"), "the hint comes with the first /regen: {first:?}");
    assert!(matches!(first.last(), Some(Outcome::Send(_))));
    reply(&mut s, "Banana,\n\tripe. 香蕉很好吃，又甜又软，而且便宜。");
    let second = s.execute(SlashCommand::Regen, false);
    assert_eq!(note(&second), "", "the hint comes once");
    reply(&mut s, "Cherry.");

    let listed = note(&s.execute(SlashCommand::Branches(None), false));
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 4, "{listed}");
    assert_eq!(lines[1], "   1    3 messages · differs at 3: \"Apple.\"", "{listed}");
    // White space flattened, cut to 40 columns (a CJK character takes two).
    assert!(lines[2].ends_with("\"Banana, ripe. 香蕉很好吃，又甜又软，而且…\""), "{listed}");
    assert!(listed.lines().all(|l| unicode_width::UnicodeWidthStr::width(l) <= 80), "{listed}");
    assert!(lines[3].starts_with("*  3    3 messages · active: \"Cherry.\""), "{listed}");

    assert!(note(&s.execute(SlashCommand::Branches(Some(1)), true)).contains("stop it first"));
    let out = s.execute(SlashCommand::Branches(Some(1)), false);
    assert!(matches!(out[0], Outcome::Reset), "{out:?}");
    assert!(note(&out).contains("switched to branch 1"), "{out:?}");
    assert_eq!(texts(&s), ["Be brief.", "Name a fruit.", "Apple."]);
    assert_eq!(s.last_reply.as_deref(), Some("Apple."));
    // The database's active path moved too, and the next turn continues branch 1.
    let name = s.name.clone();
    assert_eq!(s.store().unwrap().load(&name).unwrap().messages, s.conversation.messages);
    s.user_turn("Another?".into());
    reply(&mut s, "Pear.");
    let reopened = SessionStore::open(dir.path()).unwrap().load(&name).unwrap();
    let stored: Vec<&str> = reopened.messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(stored, ["Be brief.", "Name a fruit.", "Apple.", "Another?", "Pear."]);
    assert_eq!(s.store().unwrap().branches(&name).unwrap().len(), 3, "no new branch from continuing one");

    s.execute(SlashCommand::Branches(Some(2)), false);
    let listed = note(&s.execute(SlashCommand::Branches(None), false));
    // Branch 1 grew (Pear.) and kept its number.
    assert!(listed.contains("   1    5 messages · differs at 3: \"Apple.\" … \"Pear.\""), "{listed}");
    assert!(listed.contains("*  2    3 messages · active"), "{listed}");
    let err = note(&s.execute(SlashCommand::Branches(Some(9)), false));
    assert!(err.contains("no branch 9"), "{err}");
}

#[test]
fn search_finds_english_and_chinese_and_open_loads_the_hit_branch() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path());
    s.user_turn("What about pricing?".into());
    reply(&mut s, "Pricing depends on volume.");
    s.execute(SlashCommand::Regen, false);
    reply(&mut s, "It varies.");
    let first = s.name.clone();
    s.execute(SlashCommand::Clear, false);
    s.user_turn("上海的市场营销策略是什么？".into());
    reply(&mut s, "重点在于本地\x1b[31m渠道。");
    let second = s.name.clone();

    let out = s.execute(SlashCommand::Search("营销策略".into()), false);
    let Some(Outcome::Listing { head, rows }) = out.first() else { panic!("{out:?}") };
    assert!(head.starts_with("1 hit(s)"), "{head}");
    assert_eq!(rows.len(), 2);
    assert!(rows[0][0].0.contains(&format!("{second} · user · ")), "{rows:?}");
    assert!(rows[1].contains(&("营销策略".to_string(), true)), "{rows:?}");

    let out = s.execute(SlashCommand::Search("volume".into()), false);
    let Some(Outcome::Listing { rows, .. }) = out.first() else { panic!("{out:?}") };
    assert!(rows[0][0].0.contains(&format!("{first} · assistant · ")), "{rows:?}");
    assert!(note(&s.execute(SlashCommand::Open(1), true)).contains("stop it first"));
    let out = s.execute(SlashCommand::Open(1), false);
    assert!(matches!(out[0], Outcome::Reset), "{out:?}");
    assert!(note(&out).contains(&format!("opened session {first} at message 3 of 3")), "{out:?}");
    assert_eq!(s.name, first);
    // The hit was on the branch /regen left behind: that branch is open now.
    assert_eq!(texts(&s), ["Be brief.", "What about pricing?", "Pricing depends on volume."]);
    assert_eq!(s.last_reply.as_deref(), Some("Pricing depends on volume."));

    assert!(note(&s.execute(SlashCommand::Open(5), false)).contains("/open 1 to /open 1"));
    assert!(note(&s.execute(SlashCommand::Search("nowhere-to-be-found".into()), false)).contains("no saved message"));
    // A search with no hits leaves nothing to open, not the hits of the one before.
    let out = note(&s.execute(SlashCommand::Open(1), false));
    assert!(!out.starts_with("opened"), "{out}");
}

#[test]
fn without_a_store_the_commands_say_so_in_one_line() {
    let mut s = ChatSession::new(&Config::default(), None);
    for cmd in [SlashCommand::Branches(None), SlashCommand::Branches(Some(1)), SlashCommand::Search("x".into())] {
        let out = note(&s.execute(cmd, false));
        assert!(out.contains("--no-save") && !out.contains('\n'), "{out}");
    }
    // /regen without a store has no branch to mention.
    s.user_turn("hi".into());
    reply(&mut s, "hello");
    assert_eq!(note(&s.execute(SlashCommand::Regen, false)), "");
}

#[test]
fn with_the_database_unavailable_save_file_keeps_the_conversation_and_load_file_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    // A data dir that cannot be created: its parent is a file (root ignores permission bits).
    std::fs::write(dir.path().join("file"), b"x").unwrap();
    assert!(SessionStore::open(&dir.path().join("file/data")).is_err());
    let mut s = ChatSession::new(&Config::default(), None);
    s.user_turn("营销策略 for the lighthouse?".into());
    reply(&mut s, "Start with a freemium tier.");
    let file = dir.path().join("kept.json");
    let out = s.execute(SlashCommand::Save(file.display().to_string()), false);
    assert!(note(&out).starts_with("wrote 2 messages to"), "{}", note(&out));
    let again = s.execute(SlashCommand::Save(file.display().to_string()), false);
    assert!(note(&again).contains("exists"), "never replaced: {}", note(&again));
    let md = dir.path().join("kept.md");
    s.execute(SlashCommand::Save(md.display().to_string()), false);
    let text = std::fs::read_to_string(&md).unwrap();
    assert!(text.contains("### Assistant\n\nStart with a freemium tier.\n"), "{text}");
    // Read back in a run that has a database: a new stored session, the same messages.
    let data = tempfile::tempdir().unwrap();
    let mut t = session(data.path());
    let out = t.execute(SlashCommand::Load(file.display().to_string()), false);
    assert!(matches!(out[0], Outcome::Reset), "{}", note(&out));
    assert_eq!(texts(&t), ["营销策略 for the lighthouse?", "Start with a freemium tier."]);
    let stored = t.store().unwrap().load(&t.name).unwrap();
    assert_eq!(stored.messages.len(), 2);
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, b"{ nope").unwrap();
    let out = t.execute(SlashCommand::Load(bad.display().to_string()), false);
    assert!(note(&out).contains("is not a moat session file") && !note(&out).contains('\n'), "{}", note(&out));
    assert_eq!(texts(&t).len(), 2, "a bad file changes nothing");
}

#[test]
fn edit_with_text_sends_it_in_place_of_the_last_message_and_keeps_the_old_as_a_branch() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path());
    s.user_turn("Tell me about cats".into());
    reply(&mut s, "Cats purr.");
    let out = s.execute(SlashCommand::Edit(Some("Tell me about horses".into())), false);
    assert!(matches!(out[0], Outcome::Reset), "{out:?}");
    assert!(matches!(out.last(), Some(Outcome::Send(_))), "the new message is sent: {out:?}");
    assert_eq!(texts(&s)[1..], ["Tell me about horses"]);
    reply(&mut s, "Horses gallop.");
    assert_eq!(texts(&s)[1..], ["Tell me about horses", "Horses gallop."]);
    assert_eq!(s.store().unwrap().branches(&s.name).unwrap().len(), 2);
    // Without text it goes to the input line, as before.
    let out = s.execute(SlashCommand::Edit(None), false);
    assert!(out.iter().any(|o| matches!(o, Outcome::Edit(t) if t == "Tell me about horses")), "{out:?}");
}
