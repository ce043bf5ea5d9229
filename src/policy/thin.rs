//! `ThinStr`: an immutable shared string behind a thin pointer.
//!
//! Why: the policy's state holds a lead's id, its owner, pool, channel,
//! region and industry per open assignment, each a shared string. An
//! `Arc<str>` is a fat pointer (address and length, 16 bytes); a
//! `ThinStr` keeps the length in the shared allocation beside the count
//! (triomphe's `ThinArc`), so each copy is 8 bytes and the allocation is
//! the same size as an `Arc<str>`'s. At a million open assignments it
//! took the policy state from 490 to 358 bytes an assignment (README,
//! Performance: the hash tables' keys shrank with the records).
//!
//! It compares, orders and hashes as the `str` it holds (so maps keyed by
//! it are looked up with a `&str`), and serialises as that string: a
//! snapshot holds no pointers.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use triomphe::ThinArc;

/// See the module's doc.
#[derive(Clone)]
pub struct ThinStr(ThinArc<(), u8>);

impl ThinStr {
    pub fn new(s: &str) -> Self {
        ThinStr(ThinArc::from_header_and_slice((), s.as_bytes()))
    }

    pub fn as_str(&self) -> &str {
        // SAFETY: the bytes are those of the `&str` given to `new`, the
        // only constructor, and a `ThinArc`'s slice is never changed.
        unsafe { std::str::from_utf8_unchecked(&self.0.slice) }
    }

    /// Whether the two are the same copy (not only equal strings).
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        a.0.ptr() == b.0.ptr()
    }
}

impl Deref for ThinStr {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for ThinStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl Default for ThinStr {
    /// The empty string (a fresh allocation, as `Arc<str>`'s default is).
    fn default() -> Self {
        ThinStr::new("")
    }
}

impl From<&str> for ThinStr {
    fn from(s: &str) -> Self {
        ThinStr::new(s)
    }
}

impl PartialEq for ThinStr {
    fn eq(&self, other: &Self) -> bool {
        // Shared copies are the common case: no bytes compared.
        ThinStr::ptr_eq(self, other) || self.as_str() == other.as_str()
    }
}

impl Eq for ThinStr {}

impl PartialOrd for ThinStr {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ThinStr {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for ThinStr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `str` hashes, which `Borrow<str>` requires.
        self.as_str().hash(state)
    }
}

impl fmt::Debug for ThinStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ThinStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ThinStr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ThinStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(ThinStr::new(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashMap};

    #[test]
    fn a_thin_string_is_one_pointer_and_behaves_as_its_str() {
        assert_eq!(std::mem::size_of::<ThinStr>(), 8);
        assert_eq!(std::mem::size_of::<Option<ThinStr>>(), 8);
        let a = ThinStr::new("rep-7");
        let b = a.clone();
        let c = ThinStr::new("rep-7");
        assert!(ThinStr::ptr_eq(&a, &b) && !ThinStr::ptr_eq(&a, &c));
        assert_eq!(a, c);
        assert_eq!(&*a, "rep-7");
        assert_eq!(a.to_string(), "rep-7");
        assert_eq!(format!("{a:?}"), "\"rep-7\"");
        assert_eq!(ThinStr::new("").as_str(), "");
        assert_eq!(ThinStr::new("公海").len(), "公海".len());
        // Looked up by `&str` in a hash map; ordered as strings.
        let map: HashMap<ThinStr, u32> = [(a.clone(), 1)].into_iter().collect();
        assert_eq!(map.get("rep-7"), Some(&1));
        let set: BTreeSet<ThinStr> = ["b", "a", "ab"].into_iter().map(ThinStr::new).collect();
        let order: Vec<&str> = set.iter().map(|s| s.as_str()).collect();
        assert_eq!(order, ["a", "ab", "b"]);
    }

    #[test]
    fn a_thin_string_serialises_as_the_string() {
        let a = ThinStr::new("lead-1");
        let bytes = bincode::serialize(&a).unwrap();
        assert_eq!(bytes, bincode::serialize("lead-1").unwrap());
        let back: ThinStr = bincode::deserialize(&bytes).unwrap();
        assert_eq!(back, a);
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"lead-1\"");
        let back: ThinStr = serde_json::from_str("\"lead-\\u00e9\"").unwrap();
        assert_eq!(&*back, "lead-é");
    }
}
