//! Instruction flags (`--from=build`, `--link`, `--mount=...`), with BuildKit's `BFlags`
//! rules: every flag must be declared by the instruction, string flags need `=value`, boolean
//! flags take no value or `=true`/`=false`, only list flags may repeat.

use super::error::ErrorKind;
use super::suggest;
use super::words::Word;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlagType {
    Bool,
    String,
    Strings,
}

/// The parsed value of one declared flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FlagValue {
    Bool(bool),
    String(Word),
    Strings(Vec<Word>),
}

/// The flags an instruction accepts, then what was given.
#[derive(Debug)]
pub(crate) struct Flags {
    declared: Vec<(&'static str, FlagType)>,
    values: Vec<(&'static str, FlagValue)>,
}

/// A flag error and the offset of the flag word at fault.
pub(crate) type FlagError = (ErrorKind, usize, Option<String>);

impl Flags {
    pub fn new(declared: &[(&'static str, FlagType)]) -> Self {
        Self {
            declared: declared.to_vec(),
            values: Vec::new(),
        }
    }

    /// Parses the flag words. The third element of an error is a "did you mean" hint.
    pub fn parse(&mut self, words: &[Word]) -> Result<(), FlagError> {
        for word in words {
            let Some(body) = word.text.strip_prefix("--") else {
                return Err((
                    ErrorKind::FlagWithoutDashes(word.text.clone()),
                    word.offset,
                    None,
                ));
            };
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let Some(&(name, typ)) = self.declared.iter().find(|(n, _)| *n == name) else {
                let options: Vec<&str> = self.declared.iter().map(|(n, _)| *n).collect();
                let hint = suggest::did_you_mean(name, &options, true);
                return Err((ErrorKind::UnknownFlag(name.to_owned()), word.offset, hint));
            };
            let existing = self.values.iter().position(|(n, _)| *n == name);
            if existing.is_some() && typ != FlagType::Strings {
                return Err((ErrorKind::DuplicateFlag(name.to_owned()), word.offset, None));
            }
            let value_offset = word.offset + 2 + name.len() + 1;
            let parsed = match (typ, value) {
                (FlagType::Bool, None) => FlagValue::Bool(true),
                (FlagType::Bool, Some("")) | (FlagType::String | FlagType::Strings, None) => {
                    return Err((
                        ErrorKind::MissingFlagValue(name.to_owned()),
                        word.offset,
                        None,
                    ));
                }
                (FlagType::Bool, Some(v)) => match v.to_ascii_lowercase().as_str() {
                    "true" => FlagValue::Bool(true),
                    "false" => FlagValue::Bool(false),
                    _ => {
                        let kind = ErrorKind::InvalidBoolFlag {
                            flag: name.to_owned(),
                            value: v.to_owned(),
                        };
                        return Err((kind, word.offset, None));
                    }
                },
                (FlagType::String, Some(v)) => FlagValue::String(Word::new(v, value_offset)),
                (FlagType::Strings, Some(v)) => {
                    let w = Word::new(v, value_offset);
                    if let Some(i) = existing {
                        if let FlagValue::Strings(list) = &mut self.values[i].1 {
                            list.push(w);
                        }
                        continue;
                    }
                    FlagValue::Strings(vec![w])
                }
            };
            self.values.push((name, parsed));
        }
        Ok(())
    }

    fn get(&self, name: &str) -> Option<&FlagValue> {
        self.values.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    pub fn bool(&self, name: &str) -> bool {
        matches!(self.get(name), Some(FlagValue::Bool(true)))
    }

    /// A boolean flag's value when it was given at all.
    pub fn bool_opt(&self, name: &str) -> Option<bool> {
        match self.get(name) {
            Some(FlagValue::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    pub fn string(&self, name: &str) -> Option<Word> {
        match self.get(name) {
            Some(FlagValue::String(w)) => Some(w.clone()),
            _ => None,
        }
    }

    pub fn strings(&self, name: &str) -> Vec<Word> {
        match self.get(name) {
            Some(FlagValue::Strings(list)) => list.clone(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(declared: &[(&'static str, FlagType)], words: &[&str]) -> Result<Flags, ErrorKind> {
        let words: Vec<Word> = words.iter().map(|w| Word::new(*w, 0)).collect();
        let mut flags = Flags::new(declared);
        flags.parse(&words).map_err(|(k, _, _)| k)?;
        Ok(flags)
    }

    #[test]
    fn flag_rules() {
        use FlagType::*;
        let decl = [("link", Bool), ("from", String), ("exclude", Strings)];
        let f = parse(&decl, &["--link", "--from=", "--exclude=a", "--exclude=b"]).unwrap();
        assert!(f.bool("link"));
        assert_eq!(f.string("from").unwrap().text, "");
        assert_eq!(f.strings("exclude").len(), 2);
        assert!(!parse(&decl, &["--link=FALSE"]).unwrap().bool("link"));
        let errors = [
            (
                &["--link=maybe"][..],
                "expecting boolean value for flag link, not: maybe",
            ),
            (&["--link="][..], "missing a value on flag: link"),
            (&["--from"][..], "missing a value on flag: from"),
            (
                &["--from=a", "--from=b"][..],
                "Duplicate flag specified: from",
            ),
            (&["--form=a"][..], "unknown flag: form"),
            (&["--FROM=a"][..], "unknown flag: FROM"),
        ];
        for (words, want) in errors {
            let err = parse(&decl, words).map(|_| ()).unwrap_err();
            assert_eq!(err.to_string(), want);
        }
    }
}
