//! Tokeniser for pcap-filter expressions.

use crate::FilterError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    /// A run of identifier characters: keywords, numbers, addresses, names.
    Word(String),
    /// Punctuation and operators, e.g. `(`, `[`, `&&`, `<=`, `\`.
    Punct(&'static str),
    Eof,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    /// 1-based column of the first character.
    pub col: usize,
}

const PUNCTS: &[&str] = &[
    "&&", "||", "==", "!=", "<=", ">=", "<<", ">>", "(", ")", "[", "]", ":", "!", "=", "<", ">",
    "+", "-", "*", "/", "%", "&", "|", "^", "\\",
];

pub(crate) fn lex(src: &str) -> Result<Vec<Token>, FilterError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut bracket_depth = 0usize;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let col = i + 1;
        let starts_word = c.is_ascii_alphanumeric()
            || c == '_'
            || (c == ':' && bracket_depth == 0 && chars.get(i + 1) == Some(&':'));
        if starts_word {
            let starts_alpha = c.is_ascii_alphabetic();
            let mut w = String::new();
            while i < chars.len() {
                let d = chars[i];
                let next_alnum = chars.get(i + 1).is_some_and(|n| n.is_ascii_alphanumeric());
                let take = d.is_ascii_alphanumeric()
                    || d == '_'
                    || d == '.'
                    || (d == ':' && bracket_depth == 0)
                    || (d == '-' && starts_alpha && next_alnum);
                if !take {
                    break;
                }
                w.push(d);
                i += 1;
            }
            out.push(Token {
                tok: Tok::Word(w),
                col,
            });
            continue;
        }
        let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
        let Some(p) = PUNCTS.iter().find(|p| rest.starts_with(**p)) else {
            return Err(FilterError::syntax(
                col,
                format!("unexpected character '{c}'"),
            ));
        };
        match *p {
            "[" => bracket_depth += 1,
            "]" => bracket_depth = bracket_depth.saturating_sub(1),
            _ => {}
        }
        i += p.chars().count();
        out.push(Token {
            tok: Tok::Punct(p),
            col,
        });
    }
    out.push(Token {
        tok: Tok::Eof,
        col: chars.len() + 1,
    });
    Ok(out)
}
