//! Rendering of an error with its whole `source()` chain, for logs, HTTP
//! responses and the command line, where only one string can be shown.

use std::error::Error;
use std::fmt::Write as _;

/// Joins an error and its sources with ": ", skipping a source whose text the
/// previous message already contains.
pub fn error_chain(err: &(dyn Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !message.is_empty() && !text.contains(&message) {
            let _ = write!(text, ": {message}");
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer failed")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn joins_sources() {
        let err = Outer(std::io::Error::other("disk gone"));

        assert_eq!(error_chain(&err), "outer failed: disk gone");
    }
}
