//! Conversations: the messages of one chat and how they change as turns are added or dropped.
//! The engine turns a conversation into tokens; front ends own the conversation.

pub mod db;
pub mod export;
pub mod inputs;
pub mod prompt_job;
pub mod search;
pub mod session;
pub mod store;
pub mod switch;

pub use crate::message::{Message, Role};

use serde::{Deserialize, Serialize};

/// A chat: an optional system prompt followed by user/assistant turns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    pub messages: Vec<Message>,
}

impl Conversation {
    pub fn new(system_prompt: &str) -> Self {
        let mut c = Conversation::default();
        if !system_prompt.trim().is_empty() {
            c.messages.push(Message::system(system_prompt));
        }
        c
    }

    pub fn push(&mut self, m: Message) {
        self.messages.push(m);
    }

    /// Drops the oldest turn (a user message and the replies that follow it), never the system
    /// prompt and never the last user message. Returns how many messages went.
    pub fn drop_oldest_turn(&mut self) -> usize {
        crate::message::drop_oldest_turn(&mut self.messages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_whole_turns_and_keeps_system_and_last_question() {
        let mut c = Conversation::new("be brief");
        for i in 0..3 {
            c.push(Message::user(format!("q{i}")));
            c.push(Message::assistant(format!("a{i}")));
        }
        c.push(Message::user("q3"));
        assert_eq!(c.drop_oldest_turn(), 2);
        assert_eq!(c.messages[0], Message::system("be brief"));
        assert_eq!(c.messages[1], Message::user("q1"));
        assert_eq!(c.drop_oldest_turn(), 2);
        assert_eq!(c.drop_oldest_turn(), 2);
        assert_eq!(c.messages, vec![Message::system("be brief"), Message::user("q3")]);
        assert_eq!(c.drop_oldest_turn(), 0);
    }
}
