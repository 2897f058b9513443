//! The SSE decoder every stream translator reads with: arbitrary bytes in three pieces;
//! never a panic, never an event larger than the limit.

#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_dataplane::sse::Decoder;

const LIMIT: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let one = usize::from(cut).min(rest.len());
    let two = (one + rest.len()) / 2;
    let mut d = Decoder::new(LIMIT);
    let mut events = 0usize;
    for piece in [&rest[..one], &rest[one..two], &rest[two..]] {
        d.push(piece);
        loop {
            match d.next_event() {
                Ok(Some(_)) => events += 1,
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    if d.finish().is_some() {
        events += 1;
    }
    assert!(events <= rest.len() + 1);
});
