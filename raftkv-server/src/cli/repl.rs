//! The REPL loop: prompt, read a line (with line editing and history on a
//! terminal, plain lines otherwise), answer it, carry on — a typo prints what
//! was expected and the loop goes on.

use std::io::{BufRead, IsTerminal, Write};

/// Where the REPL's lines come from.
pub enum Lines {
    /// An interactive terminal: rustyline, with history in `history`.
    Terminal(Box<rustyline::DefaultEditor>, Option<std::path::PathBuf>),
    /// Anything else (a pipe, a file): one line at a time.
    Plain(Box<dyn BufRead>),
}

impl Lines {
    /// Standard input: a terminal editor if it is one, plain lines otherwise.
    #[must_use]
    pub fn stdin() -> Self {
        if std::io::stdin().is_terminal() {
            if let Ok(mut editor) = rustyline::DefaultEditor::new() {
                let history = std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".raftkv_history"));
                if let Some(h) = &history {
                    let _ = editor.load_history(h);
                }
                return Self::Terminal(Box::new(editor), history);
            }
        }
        Self::Plain(Box::new(std::io::BufReader::new(std::io::stdin())))
    }

    /// The next line, or `None` at the end of input (Ctrl-D) or on Ctrl-C.
    pub fn next(&mut self, prompt: &str, out: &mut dyn Write) -> Option<String> {
        match self {
            Self::Terminal(editor, _) => match editor.readline(prompt) {
                Ok(line) => {
                    if !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line.as_str());
                    }
                    Some(line)
                }
                Err(_) => None,
            },
            Self::Plain(input) => {
                let _ = write!(out, "{prompt}");
                let _ = out.flush();
                let mut line = String::new();
                match input.read_line(&mut line) {
                    Ok(0) | Err(_) => None,
                    Ok(_) => Some(line.trim_end_matches(['\n', '\r']).to_string()),
                }
            }
        }
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        if let Self::Terminal(editor, Some(history)) = self {
            let _ = editor.save_history(history);
        }
    }
}

/// Run a REPL: print `banner`, then for every line print what `answer`
/// says (nothing for a blank line) until the input ends.
pub fn run(banner: &str, mut lines: Lines, out: &mut dyn Write, mut answer: impl FnMut(&str) -> Option<String>) {
    let _ = writeln!(out, "{banner}");
    while let Some(line) = lines.next("> ", out) {
        if let Some(text) = answer(&line) {
            let _ = writeln!(out, "{text}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_input_gets_a_prompt_per_line_and_every_answer() {
        let input = "Get a\n\nbogus\n";
        let lines = Lines::Plain(Box::new(std::io::Cursor::new(input.as_bytes().to_vec())));
        let mut out = Vec::new();
        run("banner", lines, &mut out, |l| if l.is_empty() { None } else { Some(format!("<{l}>")) });
        assert_eq!(String::from_utf8_lossy(&out), "banner\n> <Get a>\n> > <bogus>\n> ");
    }
}
