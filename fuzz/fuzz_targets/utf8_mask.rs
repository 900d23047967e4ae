//! Differential: incremental UTF-8 validation at arbitrary split points equals
//! std's verdict; word-at-a-time masking equals the scalar reference.
#![no_main]
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ws_proto::mask::{apply_mask, apply_mask_scalar, copy_masked};
use ws_proto::utf8::Utf8Validator;

#[derive(Arbitrary, Debug)]
struct Input {
    data: Vec<u8>,
    splits: Vec<u8>,
    key: [u8; 4],
    offset: u8,
}

fuzz_target!(|input: Input| {
    let expect = std::str::from_utf8(&input.data).is_ok();
    let mut v = Utf8Validator::new();
    let mut ok = true;
    let mut pos = 0;
    for s in input.splits.iter().chain(std::iter::once(&255)) {
        let n = (usize::from(*s) % 17).min(input.data.len() - pos);
        let end = if *s == 255 { input.data.len() } else { pos + n };
        if v.feed(&input.data[pos..end]).is_err() {
            ok = false;
            break;
        }
        pos = end;
        if pos == input.data.len() {
            break;
        }
    }
    if ok && pos == input.data.len() {
        ok = v.finish().is_ok();
    }
    assert_eq!(ok, expect);

    let off = usize::from(input.offset);
    let mut a = input.data.clone();
    let mut b = input.data.clone();
    apply_mask(&mut a, input.key, off);
    apply_mask_scalar(&mut b, input.key, off);
    assert_eq!(a, b);
    let mut c = vec![0; input.data.len()];
    copy_masked(&input.data, &mut c, input.key, off);
    assert_eq!(c, b);
});
