//! A tiny `--flag value` parser.

use std::str::FromStr;

use anyhow::{anyhow, bail, Context, Result};

/// Flags given as `--name value` pairs.
pub struct Flags<'a> {
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> Flags<'a> {
    /// Parse `args`; every flag must be one of `known` and have a value.
    pub fn parse(args: &[&'a str], known: &[&str]) -> Result<Self> {
        let mut pairs = Vec::new();
        let mut it = args.iter();
        while let Some(&flag) = it.next() {
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (flag, None),
            };
            if !known.contains(&name) {
                bail!("unknown argument `{flag}` (expected one of {})", known.join(", "));
            }
            let value = match inline {
                Some(v) => v,
                None => it.next().copied().ok_or_else(|| anyhow!("`{name}` needs a value"))?,
            };
            pairs.push((name, value));
        }
        Ok(Self { pairs })
    }

    /// The last value of `name` parsed as `T`, if given.
    pub fn get<T: FromStr>(&self, name: &str) -> Result<Option<T>>
    where
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        match self.pairs.iter().rev().find(|(n, _)| *n == name) {
            Some((_, v)) => Ok(Some(v.parse().with_context(|| format!("bad value `{v}` for `{name}`"))?)),
            None => Ok(None),
        }
    }

    /// A comma-separated list of `T`, if given.
    pub fn list<T: FromStr>(&self, name: &str) -> Result<Option<Vec<T>>>
    where
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        match self.pairs.iter().rev().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                let items = v
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| s.trim().parse().with_context(|| format!("bad item `{s}` in `{name}`")))
                    .collect::<Result<Vec<T>>>()?;
                Ok(Some(items))
            }
            None => Ok(None),
        }
    }
}
