//! Any bytes as `postqueue -j` output: a queue (with malformed lines counted), never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailflow_exporter::postfix::{MAX_MESSAGES, parse_queue};

fuzz_target!(|data: &[u8]| {
    let queue = parse_queue(data);
    assert!(queue.messages.len() <= MAX_MESSAGES);
    for message in &queue.messages {
        for recipient in &message.recipients {
            if let Some(reason) = &recipient.delay_reason {
                let _ = mailflow_exporter::postfix::classify(reason);
                let _ = mailflow_exporter::postfix::next_hop(reason);
            }
        }
    }
});
