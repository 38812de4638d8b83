//! Redis's glob-style patterns (KEYS, SCAN MATCH, PSUBSCRIBE, CONFIG GET):
//! `*`, `?`, `[a-z]`, `[^x]`, `\x`, with `stringmatchlen`'s semantics
//! (util.c), quirks included: an unterminated class ends at the pattern's
//! end, and nothing but an empty pattern matches an empty string.
//!
//! Work is bounded by |pattern| x |string|: once the rest of a pattern
//! after a `*` failed to match at every later position, no earlier `*`
//! can help by matching more (Redis's fix for CVE-2022-36021), so the
//! search stops instead of backtracking exponentially.

pub fn glob_match(pattern: &[u8], s: &[u8], nocase: bool) -> bool {
    let mut give_up = false;
    matches(pattern, s, nocase, &mut give_up)
}

fn eq(a: u8, b: u8, nocase: bool) -> bool {
    if nocase { a.eq_ignore_ascii_case(&b) } else { a == b }
}

/// Matches one `[...]` class (`p` starts after the `[`) against `c`;
/// returns whether it matched and the pattern after the class.
fn class(mut p: &[u8], c: u8, nocase: bool) -> (bool, &[u8]) {
    let not = p.first() == Some(&b'^');
    if not {
        p = &p[1..];
    }
    let mut hit = false;
    loop {
        match p {
            [] => break,
            [b'\\', x, ..] => {
                hit |= *x == c;
                p = &p[2..];
            }
            [b']', ..] => {
                p = &p[1..];
                break;
            }
            [lo, b'-', hi, ..] => {
                let (mut lo, mut hi, mut c) = (*lo.min(hi), *lo.max(hi), c);
                if nocase {
                    (lo, hi, c) = (lo.to_ascii_lowercase(), hi.to_ascii_lowercase(), c.to_ascii_lowercase());
                }
                hit |= (lo..=hi).contains(&c);
                p = &p[3..];
            }
            [x, ..] => {
                hit |= eq(*x, c, nocase);
                p = &p[1..];
            }
        }
    }
    (hit != not, p)
}

fn matches(mut p: &[u8], mut s: &[u8], nocase: bool, give_up: &mut bool) -> bool {
    while !p.is_empty() && !s.is_empty() {
        match p[0] {
            b'*' => {
                while p.len() > 1 && p[1] == b'*' {
                    p = &p[1..];
                }
                if p.len() == 1 {
                    return true;
                }
                while !s.is_empty() {
                    if matches(&p[1..], s, nocase, give_up) {
                        return true;
                    }
                    if *give_up {
                        return false;
                    }
                    s = &s[1..];
                }
                *give_up = true;
                return false;
            }
            b'?' => {
                p = &p[1..];
            }
            b'[' => {
                let (hit, rest) = class(&p[1..], s[0], nocase);
                if !hit {
                    return false;
                }
                p = rest;
            }
            b'\\' if p.len() >= 2 => {
                if !eq(p[1], s[0], nocase) {
                    return false;
                }
                p = &p[2..];
            }
            c => {
                if !eq(c, s[0], nocase) {
                    return false;
                }
                p = &p[1..];
            }
        }
        s = &s[1..];
        if s.is_empty() {
            while p.first() == Some(&b'*') {
                p = &p[1..];
            }
        }
    }
    p.is_empty() && s.is_empty()
}

#[cfg(test)]
mod tests {
    use super::glob_match as m;

    #[test]
    fn globs() {
        assert!(m(b"*", b"anything", false));
        assert!(m(b"h?llo", b"hello", false));
        assert!(!m(b"h?llo", b"hllo", false));
        assert!(m(b"h*llo", b"heeeello", false));
        assert!(m(b"h[ae]llo", b"hallo", false));
        assert!(!m(b"h[ae]llo", b"hillo", false));
        assert!(m(b"h[^e]llo", b"hallo", false));
        assert!(!m(b"h[^e]llo", b"hello", false));
        assert!(m(b"h[a-b]llo", b"hbllo", false));
        assert!(m(b"h\\*llo", b"h*llo", false));
        assert!(!m(b"h\\*llo", b"hello", false));
        assert!(m(b"MAX*", b"maxclients", true));
        assert!(!m(b"a[", b"ab", false));
        assert!(m(b"", b"", false));
        assert!(!m(b"a*b", b"acd", false));
        // stringmatchlen's quirks: a class left open ends with the pattern;
        // a star needs at least one character.
        assert!(m(b"a[b", b"ab", false));
        assert!(!m(b"*", b"", false));
        assert!(m(b"a*", b"a", false));
    }

    #[test]
    fn pathological_patterns_finish() {
        let pattern = format!("{}b", "a*".repeat(20));
        let key = vec![b'a'; 40];
        let started = std::time::Instant::now();
        assert!(!m(pattern.as_bytes(), &key, false));
        assert!(started.elapsed() < std::time::Duration::from_millis(100));
        let mut key = key;
        key.push(b'b');
        assert!(m(pattern.as_bytes(), &key, false));
    }
}
