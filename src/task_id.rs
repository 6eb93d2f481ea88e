//! Validation of the provider's task id, which becomes part of S3 keys.

use std::fmt;

/// Maximum length of a task id, in bytes.
pub const MAX_TASK_ID_LEN: usize = 128;

/// A task id that is safe to use as one S3 key segment: 1 to 128 characters
/// of `[A-Za-z0-9_.-]`, and neither `.` nor `..`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskIdError {
    #[error("task id is empty")]
    Empty,
    #[error("task id is {len} characters long, the maximum is {MAX_TASK_ID_LEN}")]
    TooLong { len: usize },
    #[error(
        "task id {preview} contains {character:?} at position {position}; \
         only ASCII letters, digits, '_', '.' and '-' are allowed"
    )]
    InvalidCharacter {
        preview: String,
        character: char,
        position: usize,
    },
    #[error("task id {0:?} is a relative path segment")]
    DotSegment(String),
}

impl TaskId {
    /// Parses and validates a task id.
    pub fn parse(value: &str) -> Result<Self, TaskIdError> {
        if value.is_empty() {
            return Err(TaskIdError::Empty);
        }

        let len = value.chars().count();
        if len > MAX_TASK_ID_LEN {
            return Err(TaskIdError::TooLong { len });
        }

        let invalid = value
            .chars()
            .enumerate()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')));
        if let Some((position, character)) = invalid {
            return Err(TaskIdError::InvalidCharacter {
                preview: format!("{value:?}"),
                character,
                position,
            });
        }

        if value == "." || value == ".." {
            return Err(TaskIdError::DotSegment(value.to_owned()));
        }

        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_provider_style_ids() {
        for id in ["mj_task_12345", "a", "A-b_c.d", "..a", &"x".repeat(128)] {
            assert_eq!(TaskId::parse(id).unwrap().as_str(), id);
        }
    }

    #[test]
    fn rejects_each_invalid_form() {
        assert_eq!(TaskId::parse(""), Err(TaskIdError::Empty));
        assert_eq!(
            TaskId::parse(&"x".repeat(129)),
            Err(TaskIdError::TooLong { len: 129 })
        );
        assert_eq!(TaskId::parse("."), Err(TaskIdError::DotSegment(".".into())));
        assert_eq!(
            TaskId::parse(".."),
            Err(TaskIdError::DotSegment("..".into()))
        );
        assert!(matches!(
            TaskId::parse("a/b"),
            Err(TaskIdError::InvalidCharacter {
                character: '/',
                position: 1,
                ..
            })
        ));
        assert!(matches!(
            TaskId::parse("a\0"),
            Err(TaskIdError::InvalidCharacter {
                character: '\0',
                position: 1,
                ..
            })
        ));
        assert!(matches!(
            TaskId::parse("tâche"),
            Err(TaskIdError::InvalidCharacter {
                character: 'â',
                position: 1,
                ..
            })
        ));
    }
}
