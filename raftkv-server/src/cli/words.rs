//! A command's words, exactly as given: from a REPL line, split at
//! whitespace with `"double"` and `'single'` quotes keeping a word's spaces
//! (`\"` and `\\` escape inside double quotes), or from the command line,
//! where the shell already split them and each argument is one word.
//!
//! Unquoted input splits as it always did, and a quote counts only where a
//! word begins, so `Put k it's` still stores `it's`.

/// One word of a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word {
    /// The word, quotes removed and escapes resolved.
    pub text: String,
    /// Whether it was quoted (or came whole from the command line).
    pub exact: bool,
    /// Where it sits in the REPL line (byte offsets), quotes included.
    span: Option<(usize, usize)>,
}

/// A command's words, and the line they came from if typed in the REPL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Words {
    line: Option<String>,
    words: Vec<Word>,
}

/// A REPL line whose quotes do not pair up.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuoteError {
    /// A quote opens a word and nothing closes it.
    #[error("Invalid quoting: the {quote} at column {column} is never closed")]
    Unterminated {
        /// The quote character.
        quote: char,
        /// Its column in the line, from 1.
        column: usize,
    },
    /// Text follows a closing quote without a space.
    #[error("Invalid quoting: the {quote} closing at column {column} must end the word (put a space after it)")]
    TextAfterQuote {
        /// The quote character.
        quote: char,
        /// Its column in the line, from 1.
        column: usize,
    },
}

/// Why the words after a command's first ones do not form one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MixedWords;

impl Words {
    /// The words of a REPL line.
    pub fn from_line(line: &str) -> Result<Self, QuoteError> {
        Ok(Self { line: Some(line.to_string()), words: split(line)? })
    }

    /// Command-line arguments, each one word as given.
    #[must_use]
    pub fn from_args(args: &[String]) -> Self {
        Self { line: None, words: args.iter().map(|a| Word { text: a.clone(), exact: true, span: None }).collect() }
    }

    /// How many words there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Whether there are none (a blank line).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Word `i`'s text.
    #[must_use]
    pub fn get(&self, i: usize) -> Option<&str> {
        self.words.get(i).map(|w| w.text.as_str())
    }

    /// The texts of the words from `i` on.
    pub fn texts_from(&self, i: usize) -> impl Iterator<Item = &str> {
        self.words.iter().skip(i).map(|w| w.text.as_str())
    }

    /// The words from `i` on as one value (`None` if there are none): a
    /// single word as it is; several unquoted words of a REPL line as the
    /// line runs from the first to the last, inner spacing kept (the
    /// compatible `Put k some words`); several command-line words joined by
    /// one space, as `echo` does. Several words of a REPL line of which some
    /// are quoted are ambiguous: [`MixedWords`].
    pub fn rest(&self, i: usize) -> Result<Option<String>, MixedWords> {
        let tail = self.words.get(i..).unwrap_or_default();
        match tail {
            [] => Ok(None),
            [one] => Ok(Some(one.text.clone())),
            [first, .., last] => match (&self.line, first.span, last.span) {
                (Some(line), Some((from, _)), Some((_, to))) if tail.iter().all(|w| !w.exact) => {
                    Ok(line.get(from..to).map(str::to_string))
                }
                (Some(_), _, _) => Err(MixedWords),
                (None, _, _) => Ok(Some(tail.iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" "))),
            },
        }
    }
}

/// Split a REPL line into words (see the module's docs). It scans with
/// `str`'s searches, so a line holding a value of many megabytes splits quickly.
pub fn split(line: &str) -> Result<Vec<Word>, QuoteError> {
    let column = |at: usize| line[..at].chars().count() + 1;
    let mut words = Vec::new();
    let mut at = 0;
    loop {
        let rest = &line[at..];
        let trimmed = rest.trim_start();
        at += rest.len() - trimmed.len();
        let Some(quote) = trimmed.chars().next() else { break };
        if quote != '"' && quote != '\'' {
            let len = trimmed.find(char::is_whitespace).unwrap_or(trimmed.len());
            words.push(Word { text: trimmed[..len].to_string(), exact: false, span: Some((at, at + len)) });
            at += len;
            continue;
        }
        let start = at;
        let mut text = String::new();
        let mut pos = at + 1;
        let end = loop {
            let rest = &line[pos..];
            let special = if quote == '"' { rest.find(['"', '\\']) } else { rest.find('\'') };
            let Some(i) = special else {
                return Err(QuoteError::Unterminated { quote, column: column(start) });
            };
            text.push_str(&rest[..i]);
            pos += i;
            if line[pos..].starts_with(quote) {
                break pos;
            }
            // A backslash inside double quotes: it escapes a quote or a backslash, else stands for itself.
            match line[pos + 1..].chars().next() {
                Some(next @ ('"' | '\\')) => {
                    text.push(next);
                    pos += 2;
                }
                _ => {
                    text.push('\\');
                    pos += 1;
                }
            }
        };
        at = end + quote.len_utf8();
        if line[at..].chars().next().is_some_and(|c| !c.is_whitespace()) {
            return Err(QuoteError::TextAfterQuote { quote, column: column(end) });
        }
        words.push(Word { text, exact: true, span: Some((start, at)) });
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(line: &str) -> Vec<String> {
        split(line).unwrap_or_else(|e| panic!("{line:?}: {e}")).into_iter().map(|w| w.text).collect()
    }

    #[test]
    fn unquoted_words_split_at_whitespace() {
        assert_eq!(texts("  Put a   1 "), ["Put", "a", "1"]);
        assert_eq!(texts(""), Vec::<String>::new());
        assert_eq!(texts("\t \t"), Vec::<String>::new());
        assert_eq!(texts("Join 1:a:1,b:2 2:c:3"), ["Join", "1:a:1,b:2", "2:c:3"]);
    }

    #[test]
    fn quotes_keep_spaces_and_are_removed() {
        assert_eq!(texts(r#"Put "my key" "  padded value ""#), ["Put", "my key", "  padded value "]);
        assert_eq!(texts("Put 'my key' ' v '"), ["Put", "my key", " v "]);
        assert_eq!(texts(r#"Put k """#), ["Put", "k", ""]);
        assert_eq!(texts(r#"'say "hi"' "it's""#), [r#"say "hi""#, "it's"]);
    }

    #[test]
    fn backslash_escapes_a_quote_or_a_backslash_inside_double_quotes_only() {
        assert_eq!(texts(r#""a \"q\" b""#), [r#"a "q" b"#]);
        assert_eq!(texts(r#""c:\\dir""#), [r"c:\dir"]);
        assert_eq!(texts(r#""keep \n and \x""#), [r"keep \n and \x"]);
        assert_eq!(texts(r"'no \' escapes'"), [r"no \", "escapes'"], "single quotes take no escapes");
        assert_eq!(texts(r"plain\word c:\dir"), [r"plain\word", r"c:\dir"]);
    }

    #[test]
    fn a_quote_inside_an_unquoted_word_is_an_ordinary_character() {
        assert_eq!(texts("Put k it's"), ["Put", "k", "it's"]);
        assert_eq!(texts(r#"Put k 5"2"#), ["Put", "k", r#"5"2"#]);
    }

    #[test]
    fn unpaired_quotes_are_clear_errors() {
        assert_eq!(split(r#"Put k "abc"#), Err(QuoteError::Unterminated { quote: '"', column: 7 }));
        assert_eq!(split("Put 'k v"), Err(QuoteError::Unterminated { quote: '\'', column: 5 }));
        assert_eq!(split(r#"Put "k \" v"#), Err(QuoteError::Unterminated { quote: '"', column: 5 }));
        assert_eq!(split(r#"Put "k"v"#), Err(QuoteError::TextAfterQuote { quote: '"', column: 7 }));
        let text = split(r#"Put k "abc"#).unwrap_err().to_string();
        assert_eq!(text, "Invalid quoting: the \" at column 7 is never closed");
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        assert_eq!(split("Put é \"x"), Err(QuoteError::Unterminated { quote: '"', column: 7 }));
        assert_eq!(texts("Put \"é ü\" ö"), ["Put", "é ü", "ö"]);
    }

    #[test]
    fn the_rest_of_a_line_is_one_word_or_the_unquoted_run_as_typed() {
        let w = Words::from_line("Put k hello   world ").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(w.rest(2), Ok(Some("hello   world".to_string())));
        assert_eq!(w.rest(1), Ok(Some("k hello   world".to_string())));
        assert_eq!(w.rest(4), Ok(None));
        let w = Words::from_line(r#"Put "my key" "  v ""#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(w.rest(2), Ok(Some("  v ".to_string())));
        assert_eq!(w.get(1), Some("my key"));
        let w = Words::from_line(r#"Put k "a b" c"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(w.rest(2), Err(MixedWords));
    }

    #[test]
    fn command_line_words_stay_whole_and_a_tail_joins_with_one_space() {
        let args = ["put", "my key", " v ", "x"].map(str::to_string);
        let w = Words::from_args(&args[..3]);
        assert_eq!((w.get(1), w.rest(2)), (Some("my key"), Ok(Some(" v ".to_string()))));
        let w = Words::from_args(&args);
        assert_eq!(w.rest(2), Ok(Some(" v  x".to_string())));
        let w = Words::from_args(&[r#""quoted""#.to_string()]);
        assert_eq!(w.get(0), Some(r#""quoted""#), "quotes in an argument are the argument's own");
    }
}
