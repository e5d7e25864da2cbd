//! The messages of a chat: who said what. A leaf shared by the engine (which turns messages into
//! tokens through the chat template) and the front ends (which own the conversation).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    /// Text with `\n` line ends: user and system text (typed, pasted, piped, or read back from a
    /// hand-edited session file) has CRLF/CR normalised, so the same words give the same tokens.
    #[serde(deserialize_with = "normalized")]
    pub content: String,
    /// A reply that an error cut off (a server that died mid-reply): the error's one line. The
    /// text so far is kept and saved with this mark; it is never sent to the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_off: Option<String>,
}

fn normalized<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    String::deserialize(d).map(crate::text_input::normalize_newlines_owned)
}

impl Message {
    /// A message; user and system text get CRLF/CR → LF, a model's reply is kept as produced (it is
    /// what the KV cache holds).
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        let content = content.into();
        let content =
            if role == Role::Assistant { content } else { crate::text_input::normalize_newlines_owned(content) };
        Message { role, content, cut_off: None }
    }
    pub fn system(content: impl Into<String>) -> Self {
        Message::new(Role::System, content)
    }
    pub fn user(content: impl Into<String>) -> Self {
        Message::new(Role::User, content)
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Message::new(Role::Assistant, content)
    }
}

/// Drops the oldest turn (a user message and the replies that follow it) from `messages`, never
/// the system prompt and never the last user message. Returns how many messages went (0 when
/// only the last question is left).
pub fn drop_oldest_turn(messages: &mut Vec<Message>) -> usize {
    let start = messages.iter().position(|m| m.role != Role::System).unwrap_or(messages.len());
    let last_user = messages.iter().rposition(|m| m.role == Role::User).unwrap_or(0);
    if start >= last_user {
        return 0;
    }
    let mut end = start + 1;
    while end < last_user && messages[end].role != Role::User {
        end += 1;
    }
    messages.drain(start..end);
    end - start
}
