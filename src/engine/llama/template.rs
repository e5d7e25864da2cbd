//! Turning a conversation into prompt text: the GGUF's own Jinja template (rendered with
//! minijinja), else one of llama.cpp's built-in formats, else a plain "User:/Assistant:" format.

use crate::engine::EngineError;
use crate::message::{Message, Role};
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};

pub enum ChatFormat {
    Jinja { env: Box<minijinja::Environment<'static>>, bos: String, eos: String },
    Builtin { template: LlamaChatTemplate, name: String },
    Plain,
}

/// The stop string that ends a plain-format reply where the model starts the user's next line.
const PLAIN_STOP: &str = "\nUser:";

impl ChatFormat {
    /// Picks the format for `choice` (`auto`, `jinja`, `builtin:NAME`, `plain`).
    pub fn select(choice: &str, model: &LlamaModel) -> Result<ChatFormat, EngineError> {
        let gguf = model.chat_template(None).ok();
        let gguf_text = gguf.as_ref().and_then(|t| t.to_string().ok());
        match choice {
            "plain" => Ok(ChatFormat::Plain),
            "jinja" => {
                let text = gguf_text.ok_or_else(|| {
                    EngineError::Template(
                        "the model has no chat template; use model.template = \"plain\" or builtin:NAME".into(),
                    )
                })?;
                Self::jinja(model, &text)
            }
            c if c.starts_with("builtin:") => {
                let name = &c["builtin:".len()..];
                let template = LlamaChatTemplate::new(name)
                    .map_err(|_| EngineError::Template(format!("bad template name {name:?}")))?;
                let f = ChatFormat::Builtin { template, name: name.to_string() };
                f.render(model, &probe(), true).map_err(|_| {
                    EngineError::Template(format!("llama.cpp has no built-in chat format called {name:?}"))
                })?;
                Ok(f)
            }
            _ => {
                let Some(text) = gguf_text else { return Ok(ChatFormat::Plain) };
                if let Ok(f) = Self::jinja(model, &text) {
                    return Ok(f);
                }
                let f = ChatFormat::Builtin {
                    template: gguf.expect("text came from it"),
                    name: "gguf (llama.cpp matcher)".into(),
                };
                if f.render(model, &probe(), true).is_ok() {
                    return Ok(f);
                }
                Ok(ChatFormat::Plain)
            }
        }
    }

    fn jinja(model: &LlamaModel, text: &str) -> Result<ChatFormat, EngineError> {
        let mut env = minijinja::Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<String, minijinja::Error> {
            Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
        });
        env.add_function("strftime_now", |fmt: String| -> String { strftime_now(&fmt) });
        env.add_template_owned("chat", text.to_string())
            .map_err(|e| EngineError::Template(format!("the model's chat template does not compile: {e}")))?;
        let vocab = model.vocab();
        let piece = |t| vocab.text(t).map(|c| c.to_string_lossy().into_owned()).unwrap_or_default();
        let f = ChatFormat::Jinja { env: Box::new(env), bos: piece(vocab.bos()), eos: piece(vocab.eos()) };
        f.render(model, &probe(), true)?;
        Ok(f)
    }

    pub fn render(
        &self,
        model: &LlamaModel,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, EngineError> {
        match self {
            ChatFormat::Jinja { env, bos, eos } => {
                let msgs: Vec<_> = messages
                    .iter()
                    .map(|m| minijinja::context! { role => m.role.as_str(), content => m.content.as_str() })
                    .collect();
                env.get_template("chat")
                    .and_then(|t| {
                        t.render(minijinja::context! {
                            messages => msgs,
                            add_generation_prompt => add_generation_prompt,
                            bos_token => bos,
                            eos_token => eos,
                        })
                    })
                    .map_err(|e| EngineError::Template(format!("the chat template failed: {e}")))
            }
            ChatFormat::Builtin { template, .. } => {
                let msgs = messages
                    .iter()
                    .map(|m| LlamaChatMessage::new(m.role.as_str().into(), m.content.replace('\0', "")))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| EngineError::Template(e.to_string()))?;
                model
                    .apply_chat_template(template, &msgs, add_generation_prompt)
                    .map_err(|e| EngineError::Template(format!("llama.cpp could not apply the chat format: {e}")))
            }
            ChatFormat::Plain => Ok(render_plain(messages, add_generation_prompt)),
        }
    }

    /// Text that, with this format, means the model has started a new turn by itself.
    pub fn stop_strings(&self) -> Vec<String> {
        match self {
            ChatFormat::Plain => vec![PLAIN_STOP.to_string()],
            _ => Vec::new(),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            ChatFormat::Jinja { .. } => "jinja (the GGUF's tokenizer.chat_template, rendered by minijinja)".into(),
            ChatFormat::Builtin { name, .. } => format!("builtin:{name} (llama.cpp's built-in formats)"),
            ChatFormat::Plain => "plain (User:/Assistant: text)".into(),
        }
    }

    /// Whether the rendered text already contains the BOS text, so the tokenizer must not add it.
    pub fn starts_with_bos(&self, text: &str) -> bool {
        matches!(self, ChatFormat::Jinja { bos, .. } if !bos.is_empty() && text.starts_with(bos.as_str()))
    }
}

fn render_plain(messages: &[Message], add_generation_prompt: bool) -> String {
    let mut out = String::new();
    for m in messages {
        match m.role {
            Role::System => {
                out.push_str(m.content.trim());
                out.push_str("\n\n");
            }
            Role::User => {
                out.push_str("User: ");
                out.push_str(m.content.trim());
                out.push('\n');
            }
            Role::Assistant => {
                out.push_str("Assistant: ");
                out.push_str(m.content.trim());
                out.push('\n');
            }
        }
    }
    if add_generation_prompt {
        out.push_str("Assistant:");
    }
    out
}

/// A conversation with every role, to test a template before trusting it.
fn probe() -> Vec<Message> {
    vec![Message::system("s"), Message::user("u"), Message::assistant("a"), Message::user("u2")]
}

/// `strftime_now` for templates that print today's date (Llama 3.x). A format jiff cannot
/// handle renders as nothing rather than failing the whole template.
fn strftime_now(fmt: &str) -> String {
    jiff::fmt::strtime::format(fmt, &jiff::Zoned::now()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_format_reads_naturally() {
        let text = render_plain(
            &[Message::system("Be brief."), Message::user(" hi "), Message::assistant("hello"), Message::user("again")],
            true,
        );
        assert_eq!(text, "Be brief.\n\nUser: hi\nAssistant: hello\nUser: again\nAssistant:");
    }

    #[test]
    fn strftime_has_a_plausible_year() {
        let y: i64 = strftime_now("%Y").parse().unwrap();
        assert!((2024..2200).contains(&y));
        assert!(strftime_now("%d %B").len() >= 6);
    }
}
