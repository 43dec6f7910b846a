//! Globs of `[[bind]]` fields: `*` matches a possibly empty run of
//! characters except `/` (and, for DNS names, except `.`); `**` matches any
//! run; everything else is literal.

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Lit(char),
    Star,
    DoubleStar,
}

/// A compiled glob.
#[derive(Clone, Debug)]
pub struct Glob {
    tokens: Vec<Token>,
    dns: bool,
    source: String,
}

impl Glob {
    /// Compiles `pattern`; `dns` makes `*` stop at `.` and matching
    /// case-insensitive.
    pub fn new(pattern: &str, dns: bool) -> Glob {
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '*' {
                if chars.peek() == Some(&'*') {
                    chars.next();
                    tokens.push(Token::DoubleStar);
                } else {
                    tokens.push(Token::Star);
                }
            } else if dns {
                tokens.push(Token::Lit(c.to_ascii_lowercase()));
            } else {
                tokens.push(Token::Lit(c));
            }
        }
        Glob {
            tokens,
            dns,
            source: pattern.to_string(),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `text` matches the whole pattern. Linear in
    /// pattern × text, no recursion.
    pub fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = if self.dns {
            text.chars().map(|c| c.to_ascii_lowercase()).collect()
        } else {
            text.chars().collect()
        };
        // reach[j]: the pattern prefix processed so far matches text[..j].
        let n = text.len();
        let mut reach = vec![false; n + 1];
        reach[0] = true;
        for tok in &self.tokens {
            let mut next = vec![false; n + 1];
            match tok {
                Token::Lit(c) => {
                    for j in 0..n {
                        if reach[j] && text[j] == *c {
                            next[j + 1] = true;
                        }
                    }
                }
                Token::Star | Token::DoubleStar => {
                    let stops = |c: char| match tok {
                        Token::Star => c == '/' || (self.dns && c == '.'),
                        _ => false,
                    };
                    let mut open = false;
                    for j in 0..=n {
                        if reach[j] {
                            open = true;
                        }
                        if open {
                            next[j] = true;
                        }
                        if j < n && stops(text[j]) {
                            open = false;
                        }
                    }
                }
            }
            reach = next;
        }
        reach[n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars() {
        let g = Glob::new("team-a-*", false);
        assert!(g.matches("team-a-app"));
        assert!(g.matches("team-a-"));
        assert!(!g.matches("team-a-x/y"));
        assert!(!g.matches("team-b-app"));
        let g = Glob::new("spiffe://example.org/ns/team-b/*", false);
        assert!(g.matches("spiffe://example.org/ns/team-b/app"));
        assert!(!g.matches("spiffe://example.org/ns/team-b/app/x"));
        let g = Glob::new("spiffe://example.org/**", false);
        assert!(g.matches("spiffe://example.org/ns/team-b/app/x"));
        let g = Glob::new("*.example.org", true);
        assert!(g.matches("API.Example.ORG"));
        assert!(!g.matches("a.b.example.org"));
        assert!(Glob::new("**.example.org", true).matches("a.b.example.org"));
        assert!(!Glob::new("exact", false).matches("Exact"));
        assert!(Glob::new("a*b*c", false).matches("aXbYc"));
    }
}
