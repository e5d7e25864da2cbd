//! View and state tests against ratatui's `TestBackend`: no terminal, no model.

use super::app::{App, Effect};
use super::view;
use crate::config::Config;
use crate::engine::{EngineError, Event, Finish, GenStats, ModelInfo, Sink, StopReason, Task};
use crate::history::History;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use unicode_width::UnicodeWidthStr;

fn info() -> ModelInfo {
    ModelInfo {
        name: "tiny-model".into(),
        path: "tiny.gguf".into(),
        architecture: "llama".into(),
        description: String::new(),
        n_params: 0,
        size_bytes: 0,
        n_ctx: 2048,
        n_ctx_train: 2048,
        n_batch: 512,
        threads: 1,
        threads_batch: 1,
        gpu: false,
        gpu_layers: 0,
        chat_format: "jinja".into(),
        load_ms: 1200.0,
        system_info: String::new(),
        ..Default::default()
    }
}

fn app() -> App {
    let mut config = Config::default();
    config.model.name = "tiny-model".into();
    let mut app = App::new(config, None, History::load(None));
    app.on_engine(Event::Loaded(Box::new(info())));
    app
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn ctrl(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        app.on_key(key(KeyCode::Char(c)));
    }
}

/// Sends a message and streams `reply` into it as a finished answer.
fn exchange(app: &mut App, question: &str, reply: &[&str], reason: StopReason) -> Vec<Effect> {
    type_text(app, question);
    let effects = app.on_key(key(KeyCode::Enter));
    for piece in reply {
        app.token(piece);
    }
    let stats = GenStats { context_used: 120, n_ctx: 2048, ttft_ms: 42.0, gen_tok_s: 88.5, ..Default::default() };
    app.request_ended(Ok(Finish { reason, stats }));
    effects
}

fn screen(app: &mut App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| view::draw(f, app)).unwrap();
    let buf = t.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..h {
        let mut x = 0;
        let mut line = String::new();
        while x < w {
            let s = buf[(x, y)].symbol();
            line.push_str(s);
            x += s.width().max(1) as u16;
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[test]
fn chat_with_markdown_cjk_and_status_line() {
    let mut app = app();
    exchange(
        &mut app,
        "什么是护城河？",
        &["**护城河**", "是企业的长期", "竞争优势。\n\n", "```rust\nfn main() {}\n```\n"],
        StopReason::EndOfGeneration,
    );
    insta::assert_snapshot!("chat_cjk_markdown", screen(&mut app, 40, 16));
}

#[test]
fn cjk_lines_never_overflow_and_status_shows_speed() {
    let mut app = app();
    exchange(&mut app, "hi", &["市场优势".repeat(30).as_str()], StopReason::EndOfGeneration);
    let s = screen(&mut app, 33, 12);
    for line in s.lines() {
        assert!(line.width() <= 33, "{line:?}");
    }
    let wide = screen(&mut app, 100, 12);
    assert!(wide.contains("88.5 tok/s") && wide.contains("ttft 42 ms") && wide.contains("120/2048"), "{wide}");
}

#[test]
fn an_estimated_gauge_shows_a_tilde_and_a_reply_note_follows_the_reply() {
    let mut app = app();
    type_text(&mut app, "hi");
    app.on_key(key(KeyCode::Enter));
    app.token("answer");
    let stats = GenStats {
        context_used: 120,
        n_ctx: 2048,
        context_estimated: true,
        note: Some("the reply arrived all at once".into()),
        ..Default::default()
    };
    app.request_ended(Ok(Finish { reason: StopReason::EndOfGeneration, stats }));
    let s = screen(&mut app, 100, 12);
    assert!(s.contains("~120/2048"), "{s}");
    let (answer, note) = (s.find("answer").unwrap(), s.find("the reply arrived all at once").expect("the note"));
    assert!(answer < note, "{s}");
    // An exact count afterwards drops the tilde.
    exchange(&mut app, "again", &["more"], StopReason::EndOfGeneration);
    let s = screen(&mut app, 100, 12);
    assert!(s.contains(" 120/2048") && !s.contains("~120"), "{s}");
}

#[test]
fn model_output_cannot_reach_the_terminal_as_escape_sequences() {
    let mut app = app();
    exchange(&mut app, "x", &["safe \x1b[2J\x1b]52;c;aGk=\x07text\x1b[31m red\r\x07 end"], StopReason::EndOfGeneration);
    let s = screen(&mut app, 60, 10);
    assert!(!s.contains('\x1b') && !s.contains('\x07') && !s.contains('\r'), "{s:?}");
    assert!(s.contains("safe") && s.contains("end"), "{s}");
}

#[test]
fn tiny_and_resized_terminals_never_panic() {
    let mut app = app();
    for _ in 0..20 {
        exchange(&mut app, "问题 question", &["答案 answer ", "🦀 ".repeat(20).as_str()], StopReason::EndOfGeneration);
    }
    type_text(&mut app, "draft 草稿");
    for (w, h) in [(120, 40), (20, 6), (19, 6), (1, 1), (0, 0), (25, 7), (80, 24), (20, 6)] {
        let s = screen(&mut app, w, h);
        if w < view::MIN_WIDTH || h < view::MIN_HEIGHT {
            assert!(w < 10 || s.contains("too small"), "{s}");
        }
        for line in s.lines() {
            assert!(line.width() <= w as usize, "{w}x{h}: {line:?}");
        }
    }
    insta::assert_snapshot!("narrow_20x6", screen(&mut app, 20, 6));
}

#[test]
fn reading_above_is_not_yanked_by_new_text() {
    let mut app = app();
    for _ in 0..10 {
        exchange(&mut app, "q", &["line\n\n".repeat(5).as_str()], StopReason::EndOfGeneration);
    }
    type_text(&mut app, "more");
    app.on_key(key(KeyCode::Enter));
    screen(&mut app, 40, 12);
    app.on_key(key(KeyCode::PageUp));
    let before = screen(&mut app, 40, 12);
    app.token("new\n\nlines\n\nkeep\n\ncoming\n\n");
    let after = screen(&mut app, 40, 12);
    let top = |s: &str| s.lines().take(5).collect::<Vec<_>>().join("\n");
    assert_eq!(top(&before), top(&after));
    assert!(app.scroll > 0);
    app.on_key(KeyEvent::new(KeyCode::End, KeyModifiers::CONTROL));
    assert_eq!(app.scroll, 0);
}

#[test]
fn esc_stops_a_reply_and_keeps_the_conversation() {
    let mut app = app();
    type_text(&mut app, "tell me a story");
    let effects = app.on_key(key(KeyCode::Enter));
    assert!(matches!(effects.as_slice(), [Effect::Submit(Task::Chat { .. })]));
    app.token("Once upon");
    assert!(matches!(app.on_key(key(KeyCode::Esc)).as_slice(), [Effect::Cancel]));
    app.request_ended(Ok(Finish { reason: StopReason::Cancelled, stats: GenStats::default() }));
    assert!(!app.generating());
    let roles: Vec<_> =
        app.session.conversation.messages.iter().map(|m| (m.role.as_str(), m.content.as_str())).collect();
    assert_eq!(roles, vec![("user", "tell me a story"), ("assistant", "Once upon")]);
    assert!(screen(&mut app, 60, 10).contains("stopped"));
}

#[test]
fn a_pasted_slash_line_is_text_and_commands_are_shared() {
    let mut app = app();
    app.on_paste("/etc/hosts is a file\nsecond line");
    let effects = app.on_key(key(KeyCode::Enter));
    assert!(
        matches!(effects.as_slice(), [Effect::Submit(Task::Chat { messages, .. })] if messages[0].content.starts_with("/etc/hosts"))
    );
    app.request_ended(Ok(Finish { reason: StopReason::EndOfGeneration, stats: GenStats::default() }));

    let mut app = super::tests::app();
    type_text(&mut app, "/set temp 0.25");
    app.on_key(key(KeyCode::Enter));
    assert_eq!(app.session.sampling.temperature, 0.25);
    type_text(&mut app, "/nonsense");
    app.on_key(key(KeyCode::Enter));
    assert!(screen(&mut app, 60, 12).contains("unknown command /nonsense"));
}

#[test]
fn edit_and_regen_rewind_the_last_turn() {
    let mut app = app();
    exchange(&mut app, "first", &["one"], StopReason::EndOfGeneration);
    exchange(&mut app, "second", &["two"], StopReason::EndOfGeneration);
    type_text(&mut app, "/edit");
    app.on_key(key(KeyCode::Enter));
    assert_eq!(app.editor.text(), "second");
    assert_eq!(app.session.conversation.messages.len(), 2);
    app.editor.take();
    type_text(&mut app, "/regen");
    let effects = app.on_key(key(KeyCode::Enter));
    assert!(matches!(effects.as_slice(), [Effect::Submit(Task::Chat { messages, .. })] if messages.len() == 1));
}

#[test]
fn ctrl_c_twice_on_an_empty_prompt_quits_and_history_recalls() {
    let mut app = app();
    exchange(&mut app, "remember me", &["ok"], StopReason::EndOfGeneration);
    app.on_key(key(KeyCode::Up));
    assert_eq!(app.editor.text(), "remember me");
    app.on_key(ctrl('c'));
    assert!(app.editor.is_empty() && !app.quit);
    app.on_key(ctrl('c'));
    assert!(!app.quit);
    let effects = app.on_key(ctrl('c'));
    assert!(app.quit && matches!(effects.as_slice(), [Effect::Quit]));
}

#[test]
fn ctrl_r_finds_an_older_entry() {
    let mut app = app();
    exchange(&mut app, "alpha question", &["a"], StopReason::EndOfGeneration);
    exchange(&mut app, "beta question", &["b"], StopReason::EndOfGeneration);
    app.on_key(ctrl('r'));
    type_text(&mut app, "alp");
    app.on_key(key(KeyCode::Enter));
    assert_eq!(app.editor.text(), "alpha question");
}

#[test]
fn copy_sends_the_code_block_by_number() {
    let mut app = app();
    exchange(&mut app, "code?", &["text\n```sh\necho hi\n```\n"], StopReason::EndOfGeneration);
    screen(&mut app, 60, 12);
    type_text(&mut app, "/copy 1");
    let effects = app.on_key(key(KeyCode::Enter));
    assert!(matches!(effects.as_slice(), [Effect::Copy(c)] if c == "echo hi\n"), "{effects:?}");
}

#[test]
fn a_command_during_a_reply_does_not_steal_its_text() {
    let mut app = app();
    type_text(&mut app, "question");
    app.on_key(key(KeyCode::Enter));
    app.token("partial");
    app.on_key(key(KeyCode::Esc));
    type_text(&mut app, "/stats");
    app.on_key(key(KeyCode::Enter));
    app.token(" answer");
    app.request_ended(Ok(Finish { reason: StopReason::Cancelled, stats: GenStats::default() }));
    assert_eq!(app.session.conversation.messages.last().unwrap().content, "partial answer");
    let s = screen(&mut app, 60, 14);
    assert!(s.contains("assistant  tiny-model · stopped"), "{s}");
    assert!(!s.contains("moat  tiny-model"), "{s}");
}

#[test]
fn a_failed_request_puts_the_question_back() {
    let mut app = app();
    type_text(&mut app, "a very long question");
    app.on_key(key(KeyCode::Enter));
    let error = EngineError::PromptTooLong { tokens: 9000, n_ctx: 4096, reserve: 256 };
    app.request_ended(Err(error));
    assert_eq!(app.editor.text(), "a very long question");
    assert!(app.session.conversation.messages.is_empty());
    assert!(!app.generating());
    assert!(screen(&mut app, 80, 12).contains("9000 tokens"));
}

#[test]
fn slash_prompt_routes_the_next_message_through_a_library_prompt() {
    let mut app = app();
    type_text(&mut app, "/prompt market/swot subject=\"Acme AI\"");
    app.on_key(key(KeyCode::Enter));
    type_text(&mut app, "Acme sells robots.");
    let effects = app.on_key(key(KeyCode::Enter));
    let job = match effects.as_slice() {
        [Effect::RunPrompt { job, n_ctx: 2048 }] => job.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(job.id, "market/swot");
    assert_eq!(job.vars, vec![("subject".to_string(), "Acme AI".to_string())]);
    assert_eq!(job.input, "Acme sells robots.");
    assert!(app.generating());
    app.prompt_finished(&job, Ok("| Strengths |\n|---|\n| robots |".into()));
    assert!(!app.generating());
    let s = screen(&mut app, 60, 16);
    assert!(s.contains("[market/swot] Acme sells robots.") && s.contains("robots"), "{s}");
    // The next message is an ordinary one again.
    type_text(&mut app, "thanks");
    assert!(matches!(app.on_key(key(KeyCode::Enter)).as_slice(), [Effect::Submit(_)]));
    // A mistyped id is caught at once.
    app.request_ended(Ok(Finish { reason: StopReason::EndOfGeneration, stats: GenStats::default() }));
    type_text(&mut app, "/prompt market/swat");
    app.on_key(key(KeyCode::Enter));
    assert!(screen(&mut app, 80, 12).contains("did you mean"));
}

#[test]
fn a_classifier_model_starts_in_classifier_mode_and_shows_its_head_results() {
    let mut config = Config::default();
    config.model.name = "tiny-bert".into();
    let mut app = App::new(config, None, History::load(None));
    let labels = vec!["negative".to_string(), "positive".to_string()];
    app.on_engine(Event::Loaded(Box::new(ModelInfo { classifier_labels: labels, ..info() })));
    type_text(&mut app, "great phone");
    let effects = app.on_key(key(KeyCode::Enter));
    assert!(matches!(effects.as_slice(), [Effect::Submit(Task::Embed(_))]), "{effects:?}");
    app.item(0, Ok(vec![-1.0, 2.0]));
    app.request_ended(Ok(Finish { reason: StopReason::EndOfGeneration, stats: GenStats::default() }));
    let shown = screen(&mut app, 80, 24);
    assert!(shown.contains("is a sequence classifier (negative, positive)"), "{shown}");
    assert!(shown.contains("positive  0.95  great phone"), "{shown}");
    assert!(shown.contains("tally: negative 0 · positive 1"), "{shown}");
}

#[test]
fn enter_while_loading_or_streaming_sends_when_the_engine_is_free() {
    // issue 12 (typed-ahead input): lines and Enters that arrive before the model has loaded, or
    // while a reply streams, are sent one by one as soon as the engine is free, with no further
    // key, and never merged.
    let mut config = Config::default();
    config.model.name = "tiny-model".into();
    let mut app = App::new(config, None, History::load(None));
    type_text(&mut app, "Write a haiku about rain.");
    assert!(app.on_key(key(KeyCode::Enter)).is_empty());
    type_text(&mut app, "Name a fruit.");
    assert!(app.on_key(key(KeyCode::Enter)).is_empty());
    type_text(&mut app, "still typing");
    assert!(app.ready_effects().is_empty(), "still loading");
    app.on_engine(Event::Loaded(Box::new(info())));
    let effects = app.ready_effects();
    let last_user = |effects: &[Effect]| match effects {
        [Effect::Submit(Task::Chat { messages, .. })] => messages.last().unwrap().content.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(last_user(&effects), "Write a haiku about rain.");
    assert_eq!(app.editor.text(), "still typing", "what is being typed stays in the editor");
    assert!(app.ready_effects().is_empty(), "a reply is streaming");
    app.token("Rain on the roof");
    app.request_ended(Ok(Finish { reason: StopReason::EndOfGeneration, stats: GenStats::default() }));
    let effects = app.ready_effects();
    assert_eq!(last_user(&effects), "Name a fruit.");
    app.request_ended(Ok(Finish { reason: StopReason::EndOfGeneration, stats: GenStats::default() }));
    assert!(app.ready_effects().is_empty(), "each is sent once");
    assert_eq!(app.history.entries(), ["Write a haiku about rain.", "Name a fruit."]);
}

#[test]
fn a_hostile_model_name_cannot_drive_the_terminal() {
    // issue 12: GGUF metadata reaches the header and the status line; bidi overrides got through.
    let mut config = Config::default();
    config.model.name = "tiny-model".into();
    let mut app = App::new(config, None, History::load(None));
    let name = "\x1b]0;PWN\x07\x1b[2Jevil\u{202E}name".to_string();
    app.on_engine(Event::Loaded(Box::new(ModelInfo { name, ..info() })));
    let shown = screen(&mut app, 80, 12);
    assert!(shown.contains("evilname"), "{shown}");
    assert!(!shown.contains(['\x1b', '\x07', '\u{202E}']) && !shown.contains("[2J"), "{shown:?}");
}

#[test]
fn reasoning_is_folded_under_the_reply_and_ctrl_t_shows_it() {
    let mut app = app();
    type_text(&mut app, "2+2?");
    app.on_key(key(KeyCode::Enter));
    app.reasoning("The user asks a sum. Two and two make four.");
    app.token("It is 4.");
    app.request_ended(Ok(Finish::default()));
    let folded = screen(&mut app, 70, 14);
    assert!(folded.contains("▸ thinking · 10 words · Ctrl+T shows"), "{folded}");
    assert!(folded.contains("It is 4.") && !folded.contains("make four"), "{folded}");
    app.on_key(ctrl('t'));
    let shown = screen(&mut app, 70, 14);
    assert!(shown.contains("▾ thinking") && shown.contains("Two and two make four."), "{shown}");
    // The conversation keeps only the answer.
    let last = app.session.conversation.messages.last().unwrap();
    assert_eq!(last.content, "It is 4.");
}

#[test]
fn a_reply_cut_off_by_an_error_is_kept_marked_and_saved() {
    let mut app = app();
    type_text(&mut app, "Tell me a story");
    app.on_key(key(KeyCode::Enter));
    app.token("Once upon a time");
    app.request_ended(Err(EngineError::Remote("the server at gpu-box:8000 closed the connection mid-reply".into())));
    let shown = screen(&mut app, 80, 16);
    assert!(shown.contains("Once upon a time") && shown.contains("cut off by an error"), "{shown}");
    assert!(shown.contains("closed the connection mid-reply"), "{shown}");
    assert!(app.editor.is_empty(), "the question is not put back: it was answered in part");
    let last = app.session.conversation.messages.last().unwrap();
    assert_eq!(last.content, "Once upon a time");
    assert_eq!(last.cut_off.as_deref(), Some("the server at gpu-box:8000 closed the connection mid-reply"));
    // Reopened later, the reply still says it was cut off.
    let saved = crate::chat::store::SavedSession {
        version: crate::chat::store::VERSION,
        name: "s".into(),
        model: "m".into(),
        sampling: Config::default().sampling,
        messages: app.session.conversation.messages.clone(),
        created: String::new(),
        updated: String::new(),
        sync: Default::default(),
    };
    let mut reopened = super::tests::app();
    reopened.resume(saved);
    assert!(screen(&mut reopened, 80, 16).contains("cut off by an error"));
}

/// A model served by llama-server at `gpu-box:8000`: its id is the GGUF's path, and the server
/// does not say its context.
fn remote_info() -> ModelInfo {
    ModelInfo {
        name: "/root/.local/share/moat/models/SmolLM2-135M-Instruct.Q4_1.gguf".into(),
        path: "http://gpu-box:8000".into(),
        architecture: "remote".into(),
        n_ctx: 0,
        remote: Some("http://gpu-box:8000".into()),
        ..info()
    }
}

#[test]
fn a_remote_model_shows_its_file_name_and_the_server_not_the_cpu() {
    let mut app = app();
    app.on_engine(Event::Loaded(Box::new(remote_info())));
    let s = screen(&mut app, 90, 10);
    let status = s.lines().last().unwrap();
    assert!(status.contains("SmolLM2-135M-Instruct.Q4_1.gguf remote gpu-box:8000"), "{s}");
    assert!(!status.contains("CPU") && !status.contains("/root/"), "{s}");
    assert!(s.contains("SmolLM2-135M-Instruct.Q4_1.gguf loaded in 1.2 s · remote gpu-box:8000"), "{s}");
    exchange(&mut app, "hi", &["hello"], StopReason::EndOfGeneration);
    assert!(screen(&mut app, 90, 10).contains("SmolLM2-135M-Instruct.Q4_1.gguf"));
    assert_eq!(app.session.model, "SmolLM2-135M-Instruct.Q4_1.gguf");
    type_text(&mut app, "/show");
    app.on_key(key(KeyCode::Enter));
    assert!(screen(&mut app, 90, 12).contains("model SmolLM2-135M-Instruct.Q4_1.gguf (remote gpu-box:8000)"));
}

#[test]
fn slash_model_alone_asks_the_loop_for_the_list_and_with_an_id_switches() {
    let mut app = app();
    type_text(&mut app, "/model");
    assert!(matches!(app.on_key(key(KeyCode::Enter)).as_slice(), [Effect::ListModels]));
    assert!(!app.generating());
    type_text(&mut app, "/model other.gguf");
    let effects = app.on_key(key(KeyCode::Enter));
    assert!(matches!(effects.as_slice(), [Effect::SwitchModel(n)] if n == "other.gguf"), "{effects:?}");
    // A refused switch (the loop's look-up failed) leaves the chat usable.
    app.load_failed("cannot switch: the server at gpu-box:8000 has no model \"x\"".into());
    assert!(!app.generating());
    type_text(&mut app, "hi");
    assert!(matches!(app.on_key(key(KeyCode::Enter)).as_slice(), [Effect::Submit(_)]));
}

#[test]
fn a_prompt_job_on_a_server_that_does_not_say_its_context_has_no_input_budget() {
    // The REPL and `moat run` give a job no budget beyond the prompt file's own when the context
    // is unknown (0); the chat must too, not budget it as a tiny context.
    let mut app = app();
    app.on_engine(Event::Loaded(Box::new(remote_info())));
    type_text(&mut app, "/prompt market/swot subject=Acme");
    app.on_key(key(KeyCode::Enter));
    let input = "Acme sells robots to farms. ".repeat(300);
    app.on_paste(&input);
    let (job, n_ctx) = match app.on_key(key(KeyCode::Enter)).as_slice() {
        [Effect::RunPrompt { job, n_ctx }] => (job.clone(), *n_ctx),
        other => panic!("{other:?}"),
    };
    assert_eq!(n_ctx, 0);
    let mut gen = crate::prompts::MockGenerator::new([
        r#"{"strengths":[{"point":"robots","evidence":[]}],"weaknesses":[],"opportunities":[],"threats":[]}"#,
    ]);
    let lib = app.session.library.clone();
    let view = crate::chat::prompt_job::run(&job, &lib, n_ctx, &mut gen).expect("runs on the whole input");
    assert!(view.contains("robots"), "{view}");
    // Shown behind passage tags ([c01] …) for citing, but whole: every sentence reached the model.
    assert_eq!(gen.requests[0].user.matches("Acme sells robots to farms.").count(), 300, "{}", gen.requests[0].user);
    assert!(gen.requests[0].user.contains("[c01] Acme sells robots"), "{}", gen.requests[0].user);
}

fn app_with_store(dir: &std::path::Path) -> App {
    let mut config = Config::default();
    config.model.name = "tiny-model".into();
    let store = crate::chat::store::SessionStore::open(dir).unwrap();
    let mut app = App::new(config, Some(store), History::load(None));
    app.on_engine(Event::Loaded(Box::new(info())));
    app
}

fn command(app: &mut App, line: &str) -> Vec<Effect> {
    type_text(app, line);
    app.on_key(key(KeyCode::Enter))
}

#[test]
fn turns_from_another_process_are_drawn_when_they_join() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = app_with_store(dir.path());
    let mut b = app_with_store(dir.path());
    exchange(&mut a, "first question", &["first answer"], StopReason::EndOfGeneration);
    let name = a.session.name.clone();
    command(&mut b, &format!("/load {name}"));
    exchange(&mut a, "question from a", &["answer to a"], StopReason::EndOfGeneration);

    // b's next message is saved after a's turn, which joins b's conversation: b shows it.
    type_text(&mut b, "question from b");
    b.on_key(key(KeyCode::Enter));
    let shown = screen(&mut b, 60, 30);
    let at = |s: &str| shown.find(s).unwrap_or_else(|| panic!("{s:?} not shown:\n{shown}"));
    assert!(at("first answer") < at("question from a"), "{shown}");
    assert!(at("answer to a") < at("question from b"), "{shown}");
    assert!(shown.contains("joined session"), "{shown}");

    // While b's reply streams, a /save pulls in another turn of a's: the reply keeps streaming
    // into its own entry, drawn last.
    b.token("streaming ");
    exchange(&mut a, "late question", &["late answer"], StopReason::EndOfGeneration);
    command(&mut b, &format!("/save {name}"));
    b.token("reply");
    b.request_ended(Ok(Finish { reason: StopReason::EndOfGeneration, stats: GenStats::default() }));
    let shown = screen(&mut b, 60, 40);
    let at = |s: &str| shown.find(s).unwrap_or_else(|| panic!("{s:?} not shown:\n{shown}"));
    assert!(at("late answer") < at("streaming reply"), "{shown}");
    let last = b.session.conversation.messages.last().unwrap();
    assert_eq!(last.content, "streaming reply");
}

#[test]
fn search_hits_are_listed_with_matches_styled_and_open_redraws() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = app_with_store(dir.path());
    exchange(&mut app, "上海的市场营销策略", &["Focus on \x1b[31mchannels."], StopReason::EndOfGeneration);
    command(&mut app, "/regen");
    app.token("Try pricing.");
    app.request_ended(Ok(Finish { reason: StopReason::EndOfGeneration, stats: GenStats::default() }));
    command(&mut app, "/clear");
    command(&mut app, "/search channels");
    let (w, h) = (60, 24);
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| view::draw(f, &mut app)).unwrap();
    let buf = t.backend().buffer().clone();
    let rows: Vec<String> =
        (0..h).map(|y| (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect::<String>()).collect();
    let shown = rows.join("\n");
    assert!(shown.contains("1 hit(s)") && shown.contains("· assistant ·"), "{shown}");
    assert!(!shown.contains("[31m"), "no escape residue: {shown}");
    let y = rows.iter().position(|r| r.contains("channels")).expect("snippet shown") as u16;
    let x = rows[y as usize].find("channels").map(|b| rows[y as usize][..b].chars().count()).unwrap() as u16;
    let (hit, plain) = (&buf[(x, y)], &buf[(x - 2, y)]);
    assert_ne!(hit.style(), plain.style(), "the match is styled apart from its surroundings");
    assert!(hit.modifier.contains(ratatui::style::Modifier::BOLD));

    // Opening the hit (on the branch /regen left behind) redraws that conversation.
    command(&mut app, "/open 1");
    let shown = screen(&mut app, 60, 24);
    assert!(shown.contains("营销策略") && shown.contains("Focus on channels."), "{shown}");
    assert!(!shown.contains("Try pricing."), "{shown}");
    assert!(shown.contains("opened session"), "{shown}");
    command(&mut app, "/branches");
    let shown = screen(&mut app, 60, 24);
    assert!(shown.contains("*  1    2 messages · active"), "{shown}");
}

#[test]
fn classifier_mode_is_resolved_again_for_each_model_loaded() {
    let mut app = App::new(Config::default(), None, History::load(None));
    app.on_engine(Event::Loaded(Box::new(info())));
    let send = |app: &mut App, text: &str| {
        type_text(app, text);
        let effects = app.on_key(key(KeyCode::Enter));
        let [Effect::Submit(task)] = effects.as_slice() else { panic!("{effects:?}") };
        let task = match task {
            Task::Score(s) => Task::Score(s.clone()),
            Task::Embed(e) => Task::Embed(e.clone()),
            other => panic!("{other:?}"),
        };
        let n = match &task {
            Task::Score(s) => s.items.len(),
            Task::Embed(e) => e.items.len(),
            _ => 0,
        };
        for i in 0..n {
            app.item(i, Ok(vec![0.5, 0.0]));
        }
        app.request_ended(Ok(Finish { reason: StopReason::Finished, stats: GenStats::default() }));
        task
    };
    type_text(&mut app, "/classify positive,negative");
    app.on_key(key(KeyCode::Enter));
    let Task::Score(first) = send(&mut app, "great phone") else { panic!("label scoring") };
    let n_free = crate::classify::calibrate::CONTENT_FREE.len();
    assert_eq!(first.items.len(), n_free + 1);
    // Another model that writes text: the old model's calibration does not carry over, it is redone.
    app.on_engine(Event::Loaded(Box::new(ModelInfo { name: "other-model".into(), ..info() })));
    let Task::Score(again) = send(&mut app, "great phone") else { panic!("label scoring") };
    assert_eq!(again.items.len(), n_free + 1);
    let Task::Score(calibrated) = send(&mut app, "great phone") else { panic!("label scoring") };
    assert_eq!(calibrated.items.len(), 1);
    // A sequence classifier keeps the user's label order and uses its own head.
    let labels = vec!["negative".to_string(), "positive".to_string()];
    app.on_engine(Event::Loaded(Box::new(ModelInfo { classifier_labels: labels, ..info() })));
    let m = app.session.classify.as_ref().expect("classifier mode");
    assert!(m.is_native() && m.labels == ["positive", "negative"], "{:?}", m.labels);
    assert!(matches!(send(&mut app, "great phone"), Task::Embed(_)));
    // Its head cannot be used on a model that writes text: chat again.
    app.on_engine(Event::Loaded(Box::new(info())));
    assert!(app.session.classify.is_none());
}
