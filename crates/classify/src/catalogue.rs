//! Service catalogue: which kind of service a host name belongs to.
//!
//! A flow's names (TLS SNI, HTTP Host, DNS query, server certificate name)
//! say more about its application than any size or timing statistic, but a
//! model only learns names it has seen. The catalogue carries what a person
//! of the field knows about widely used services (`data/services.txt`: domain
//! suffix → video, audio, conferencing or messaging) into features that
//! generalise to services and captures the training data never saw.

use std::collections::HashMap;
use std::sync::OnceLock;

/// Category of a service in the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    Video,
    Audio,
    Conferencing,
    Messaging,
}

impl Category {
    /// Every category, in feature order.
    pub const ALL: [Category; 4] = [
        Category::Video,
        Category::Audio,
        Category::Conferencing,
        Category::Messaging,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Category::Video => "video",
            Category::Audio => "audio",
            Category::Conferencing => "conferencing",
            Category::Messaging => "messaging",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == s)
    }

    /// Bit of this category in a [`Catalogue::categories`] mask.
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// The built-in catalogue text (also the format of user catalogues).
pub const BUILTIN: &str = include_str!("../data/services.txt");

/// Domain suffixes and their categories.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    suffixes: HashMap<String, Category>,
}

impl Catalogue {
    /// Parses `"<suffix> <category>"` lines; `#` starts a comment.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut suffixes = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut it = line.split_whitespace();
            let (Some(suffix), Some(cat), None) = (it.next(), it.next(), it.next()) else {
                return Err(format!(
                    "line {}: expected \"<domain suffix> <category>\", got {line:?}",
                    i + 1
                ));
            };
            let cat = Category::parse(cat).ok_or_else(|| {
                format!(
                    "line {}: unknown category {cat:?} (one of video, audio, conferencing, messaging)",
                    i + 1
                )
            })?;
            suffixes.insert(suffix.trim_matches('.').to_ascii_lowercase(), cat);
        }
        Ok(Catalogue { suffixes })
    }

    /// The catalogue compiled into the binary.
    pub fn builtin() -> &'static Catalogue {
        static CAT: OnceLock<Catalogue> = OnceLock::new();
        CAT.get_or_init(|| Catalogue::parse(BUILTIN).expect("built-in catalogue parses"))
    }

    pub fn len(&self) -> usize {
        self.suffixes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.suffixes.is_empty()
    }

    /// Category of a host name: the longest listed suffix wins. Ports,
    /// brackets, a trailing dot and case are ignored; addresses match nothing.
    pub fn lookup(&self, name: &str) -> Option<Category> {
        let mut n = name.trim().trim_end_matches('.');
        if let Some((h, port)) = n.rsplit_once(':') {
            if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) {
                n = h;
            }
        }
        if n.is_empty() || n.len() > 253 || n.contains(':') || n.parse::<std::net::IpAddr>().is_ok()
        {
            return None;
        }
        let lower;
        let n = if n.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = n.to_ascii_lowercase();
            lower.as_str()
        } else {
            n
        };
        // Longest suffix first: the whole name, then drop one label at a time.
        let mut rest = n;
        loop {
            if let Some(&c) = self.suffixes.get(rest) {
                return Some(c);
            }
            match rest.split_once('.') {
                Some((_, tail)) if !tail.is_empty() => rest = tail,
                _ => return None,
            }
        }
    }

    /// Bit mask ([`Category::bit`]) of the categories of several names.
    pub fn categories<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> u8 {
        names
            .into_iter()
            .filter_map(|n| self.lookup(n))
            .fold(0, |m, c| m | c.bit())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_parses_and_matches_suffixes_only_on_label_boundaries() {
        let c = Catalogue::builtin();
        assert!(c.len() > 100);
        assert_eq!(c.lookup("www.youtube.com"), Some(Category::Video));
        assert_eq!(c.lookup("YouTube.com."), Some(Category::Video));
        assert_eq!(
            c.lookup("rr4---sn-4g5e6nze.googlevideo.com"),
            Some(Category::Video)
        );
        assert_eq!(
            c.lookup("zoomfr84zc.zoom.us:443"),
            Some(Category::Conferencing)
        );
        // "notyoutube.com" is another domain.
        assert_eq!(c.lookup("notyoutube.com"), None);
        assert_eq!(c.lookup("com"), None);
        assert_eq!(c.lookup("23.246.11.141"), None);
        assert_eq!(c.lookup("[2001:db8::1]:80"), None);
        assert_eq!(c.lookup(""), None);
    }

    #[test]
    fn longest_suffix_wins() {
        let c = Catalogue::parse("microsoft.com messaging\nteams.microsoft.com conferencing\n")
            .unwrap();
        assert_eq!(
            c.lookup("config.teams.microsoft.com"),
            Some(Category::Conferencing)
        );
        assert_eq!(c.lookup("login.microsoft.com"), Some(Category::Messaging));
    }

    #[test]
    fn categories_mask() {
        let c = Catalogue::builtin();
        let m = c.categories(["api.netflix.com", "example.org", "web.whatsapp.com"]);
        assert_eq!(m, Category::Video.bit() | Category::Messaging.bit());
        assert_eq!(c.categories([]), 0);
    }

    #[test]
    fn bad_lines_are_named() {
        let e = Catalogue::parse("a.com video\nb.com films\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("films"), "{e}");
        let e = Catalogue::parse("a.com\n").unwrap_err();
        assert!(e.contains("line 1"), "{e}");
    }
}
