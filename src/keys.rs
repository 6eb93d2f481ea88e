//! S3 key layout: everything for one task lives under `{prefix}{taskId}/`.

use crate::task_id::TaskId;

/// File name of the stored callback body.
pub const CALLBACK_FILE: &str = "callback.json";
/// File name of the archive manifest.
pub const MANIFEST_FILE: &str = "manifest.json";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("KEY_PREFIX {0:?} must be empty or end with '/', for example \"midjourney/\"")]
    MissingTrailingSlash(String),
    #[error("KEY_PREFIX {0:?} must not start with '/'; S3 keys have no leading slash")]
    LeadingSlash(String),
    #[error("KEY_PREFIX {0:?} contains an empty, '.' or '..' path segment")]
    BadSegment(String),
    #[error("KEY_PREFIX is {0} bytes long, the maximum is 512")]
    TooLong(usize),
}

/// The key layout under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLayout {
    prefix: String,
}

impl KeyLayout {
    /// Validates a prefix such as `midjourney/` (or the empty prefix).
    pub fn new(prefix: &str) -> Result<Self, PrefixError> {
        if prefix.len() > 512 {
            return Err(PrefixError::TooLong(prefix.len()));
        }
        if prefix.is_empty() {
            return Ok(Self {
                prefix: String::new(),
            });
        }
        if prefix.starts_with('/') {
            return Err(PrefixError::LeadingSlash(prefix.to_owned()));
        }
        if !prefix.ends_with('/') {
            return Err(PrefixError::MissingTrailingSlash(prefix.to_owned()));
        }

        let bad_segment = prefix
            .strip_suffix('/')
            .unwrap_or(prefix)
            .split('/')
            .any(|segment| segment.is_empty() || segment == "." || segment == "..");
        if bad_segment {
            return Err(PrefixError::BadSegment(prefix.to_owned()));
        }

        Ok(Self {
            prefix: prefix.to_owned(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `{prefix}{taskId}/`
    pub fn task_dir(&self, task_id: &TaskId) -> String {
        format!("{}{}/", self.prefix, task_id)
    }

    pub fn callback_key(&self, task_id: &TaskId) -> String {
        format!("{}{CALLBACK_FILE}", self.task_dir(task_id))
    }

    pub fn manifest_key(&self, task_id: &TaskId) -> String {
        format!("{}{MANIFEST_FILE}", self.task_dir(task_id))
    }

    /// `{prefix}{taskId}/{index}.{ext}`; `ext` must be a short ASCII alphanumeric word.
    pub fn result_key(&self, task_id: &TaskId, index: usize, ext: &str) -> String {
        debug_assert!(ext.bytes().all(|b| b.is_ascii_alphanumeric()));
        format!("{}{index}.{ext}", self.task_dir(task_id))
    }

    /// Returns the task id of a callback key under this prefix, or `None` for
    /// any other key (results, manifests, other prefixes, invalid task ids).
    pub fn task_id_of_callback_key(&self, key: &str) -> Option<TaskId> {
        let rest = key.strip_prefix(&self.prefix)?;
        let task = rest.strip_suffix(CALLBACK_FILE)?.strip_suffix('/')?;
        TaskId::parse(task).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str) -> TaskId {
        TaskId::parse(id).unwrap()
    }

    #[test]
    fn keys_under_prefix() {
        let layout = KeyLayout::new("midjourney/").unwrap();
        let id = task("mj_task_12345");

        assert_eq!(
            layout.callback_key(&id),
            "midjourney/mj_task_12345/callback.json"
        );
        assert_eq!(
            layout.manifest_key(&id),
            "midjourney/mj_task_12345/manifest.json"
        );
        assert_eq!(
            layout.result_key(&id, 3, "png"),
            "midjourney/mj_task_12345/3.png"
        );
    }

    #[test]
    fn empty_prefix_keys() {
        let layout = KeyLayout::new("").unwrap();

        assert_eq!(layout.callback_key(&task("t")), "t/callback.json");
    }

    #[test]
    fn prefix_validation_variants() {
        assert_eq!(
            KeyLayout::new("midjourney"),
            Err(PrefixError::MissingTrailingSlash("midjourney".into()))
        );
        assert_eq!(
            KeyLayout::new("/a/"),
            Err(PrefixError::LeadingSlash("/a/".into()))
        );
        assert_eq!(
            KeyLayout::new("a//"),
            Err(PrefixError::BadSegment("a//".into()))
        );
        assert_eq!(
            KeyLayout::new("a/../"),
            Err(PrefixError::BadSegment("a/../".into()))
        );
        assert_eq!(
            KeyLayout::new(&"a".repeat(513)),
            Err(PrefixError::TooLong(513))
        );
        assert!(KeyLayout::new("a b+c/x/").is_ok());
    }

    #[test]
    fn callback_key_recognition() {
        let layout = KeyLayout::new("midjourney/").unwrap();

        assert_eq!(
            layout.task_id_of_callback_key("midjourney/mj_1/callback.json"),
            Some(task("mj_1"))
        );
        for other in [
            "midjourney/mj_1/0.png",
            "midjourney/mj_1/manifest.json",
            "other/mj_1/callback.json",
            "midjourney/a/b/callback.json",
            "midjourney/callback.json",
            "midjourney/../callback.json",
            "midjourney/mj_1/xcallback.json",
        ] {
            assert_eq!(layout.task_id_of_callback_key(other), None, "{other}");
        }
    }
}
