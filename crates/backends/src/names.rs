//! Names that are read from the command line, written into results and read back from the store:
//! [`named_enum!`] gives every variant of such an enum exactly one spelling (plus aliases accepted
//! when parsing), and derives from it `as_str`, `Display`, `FromStr`, serde (as that string) and,
//! through [`clap_value_enum!`], clap's `ValueEnum`. A renamed variant therefore never changes
//! stored data, and no second list of the names exists anywhere.
//!
//! The engines have a table of their own (two spellings each: the CLI's and the recorded one),
//! in [`crate::config`].

/// A name that is none of an enum's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{given}`: expected {expected}")]
pub struct UnknownName {
    /// What was being named ("precision", "device", ...).
    pub what: &'static str,
    pub given: String,
    /// The accepted spellings, e.g. "fp32, fp16 or int8".
    pub expected: String,
}

/// "a, b or c".
pub fn one_of<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.into_iter().collect();
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// Defines a fieldless enum whose variants each have one spelling and optional aliases:
///
/// ```
/// detbench_backends::named_enum! {
///     /// A colour.
///     pub enum Colour as "colour" {
///         Red = "red" | "r",
///         Green = "green",
///     }
/// }
/// assert_eq!("r".parse::<Colour>().unwrap(), Colour::Red);
/// assert_eq!(Colour::Green.to_string(), "green");
/// ```
///
/// The crate using it needs `serde` (and `thiserror` is not needed: the error is
/// [`UnknownName`]).
#[macro_export]
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident as $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $spelling:literal $(| $alias:literal)* ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The one spelling of this value (CLI, results, store).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $spelling),+
                }
            }

            /// Other spellings accepted when parsing.
            pub fn aliases(self) -> &'static [&'static str] {
                match self {
                    $($name::$variant => &[$($alias),*]),+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::names::UnknownName;
            fn from_str(s: &str) -> ::std::result::Result<Self, Self::Err> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s || v.aliases().contains(&s))
                    .ok_or_else(|| $crate::names::UnknownName {
                        what: $what,
                        given: s.to_owned(),
                        expected: $crate::names::one_of(Self::ALL.iter().map(|v| v.as_str())),
                    })
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(
                &self,
                serializer: S,
            ) -> ::std::result::Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> ::std::result::Result<Self, D::Error> {
                let text = <::std::string::String as ::serde::Deserialize>::deserialize(deserializer)?;
                text.parse().map_err(::serde::de::Error::custom)
            }
        }
    };
}

/// Implements clap's `ValueEnum` for an enum made by [`named_enum!`] (its spellings and aliases).
/// The crate invoking it needs `clap`; library crates put it behind their `clap` feature:
/// `#[cfg(feature = "clap")] detbench_backends::clap_value_enum!(Precision);`
#[macro_export]
macro_rules! clap_value_enum {
    ($name:ident) => {
        impl ::clap::ValueEnum for $name {
            fn value_variants<'a>() -> &'a [Self] {
                Self::ALL
            }
            fn to_possible_value(&self) -> ::std::option::Option<::clap::builder::PossibleValue> {
                Some(
                    ::clap::builder::PossibleValue::new(self.as_str())
                        .aliases(self.aliases().iter().copied()),
                )
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::one_of;

    crate::named_enum! {
        /// A test enum.
        enum Shade as "shade" {
            Light = "light" | "pale",
            Dark = "dark",
        }
    }

    #[test]
    fn one_spelling_parses_displays_and_serialises() {
        assert_eq!("pale".parse::<Shade>().unwrap(), Shade::Light);
        assert_eq!(Shade::Dark.to_string(), "dark");
        assert_eq!(serde_json::to_string(&Shade::Light).unwrap(), "\"light\"");
        assert_eq!(
            serde_json::from_str::<Shade>("\"pale\"").unwrap(),
            Shade::Light
        );
        let err = "grey".parse::<Shade>().unwrap_err().to_string();
        assert_eq!(err, "unknown shade `grey`: expected light or dark");
        assert_eq!(one_of(["a", "b", "c"]), "a, b or c");
    }
}
