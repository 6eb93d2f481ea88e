//! Feeds arbitrary bytes to the callback parser with the default limits, and
//! their lossy UTF-8 form to the task id parser. Either may return an error,
//! but neither may panic, and an accepted value must keep its invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mj_archive::callback::{Callback, CallbackLimits};
use mj_archive::task_id::{TaskId, MAX_TASK_ID_LEN};

fuzz_target!(|data: &[u8]| {
    let limits = CallbackLimits::default();
    if let Ok(callback) = Callback::parse(data, limits) {
        assert!(callback.result_urls.len() <= limits.max_result_urls);
        assert!(callback
            .result_urls
            .iter()
            .all(|url| url.len() <= limits.max_url_length));
        assert_task_id_is_one_key_segment(&callback.task_id);
        // The prompt is returned as JSON or as the raw string, never dropped.
        assert_eq!(callback.prompt().is_some(), callback.prompt_json.is_some());
    }

    let text = String::from_utf8_lossy(data);
    if let Ok(task_id) = TaskId::parse(&text) {
        assert_eq!(task_id.as_str(), text);
        assert_task_id_is_one_key_segment(&task_id);
    }
});

fn assert_task_id_is_one_key_segment(task_id: &TaskId) {
    let id = task_id.as_str();
    assert!(!id.is_empty());
    assert!(id.len() <= MAX_TASK_ID_LEN);
    assert_ne!(id, ".");
    assert_ne!(id, "..");
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')));
}
