//! A map by tenant id whose default tenant (the empty id) is found
//! without comparing strings.
//!
//! The policies look their tenant up several times per event (its
//! processor, its place in the due index, whether it has scores waiting),
//! and in a single-tenant deployment every look-up is of the empty id. An
//! ordered map compares the id with its keys through `memcmp`, which for
//! two empty strings is slow on some machines (see
//! [`crate::domain::tenant::same_tenant`]); here the default tenant has
//! its own slot, reached by a length test, and the others live in an
//! ordered map as before. Iteration goes in id order, the default tenant
//! first, as an ordered map of every tenant would.

use std::collections::BTreeMap;

#[derive(Clone, Debug)]
pub struct ByTenant<V> {
    default: Option<V>,
    others: BTreeMap<String, V>,
}

impl<V> Default for ByTenant<V> {
    fn default() -> Self {
        ByTenant {
            default: None,
            others: BTreeMap::new(),
        }
    }
}

impl<V> ByTenant<V> {
    pub fn get(&self, tenant: &str) -> Option<&V> {
        if tenant.is_empty() {
            self.default.as_ref()
        } else {
            self.others.get(tenant)
        }
    }

    pub fn get_mut(&mut self, tenant: &str) -> Option<&mut V> {
        if tenant.is_empty() {
            self.default.as_mut()
        } else {
            self.others.get_mut(tenant)
        }
    }

    pub fn contains(&self, tenant: &str) -> bool {
        self.get(tenant).is_some()
    }

    /// Puts `value` for `tenant`; returns the value it replaces.
    pub fn insert(&mut self, tenant: &str, value: V) -> Option<V> {
        if tenant.is_empty() {
            self.default.replace(value)
        } else {
            self.others.insert(tenant.to_string(), value)
        }
    }

    pub fn remove(&mut self, tenant: &str) -> Option<V> {
        if tenant.is_empty() {
            self.default.take()
        } else {
            self.others.remove(tenant)
        }
    }

    /// `tenant`'s value, made by `make` if it has none.
    pub fn get_or_insert_with(&mut self, tenant: &str, make: impl FnOnce() -> V) -> &mut V {
        if tenant.is_empty() {
            self.default.get_or_insert_with(make)
        } else {
            // Looked up before inserting, so that a known tenant's id is
            // not copied.
            if !self.others.contains_key(tenant) {
                self.others.insert(tenant.to_string(), make());
            }
            self.others.get_mut(tenant).expect("inserted above")
        }
    }

    pub fn is_empty(&self) -> bool {
        self.default.is_none() && self.others.is_empty()
    }

    /// Every tenant's value in id order, the default tenant first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.default
            .iter()
            .map(|v| ("", v))
            .chain(self.others.iter().map(|(t, v)| (t.as_str(), v)))
    }

    /// [`iter`](Self::iter), mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut V)> {
        self.default
            .iter_mut()
            .map(|v| ("", v))
            .chain(self.others.iter_mut().map(|(t, v)| (t.as_str(), v)))
    }

    /// Every tenant id in order, the default tenant first.
    pub fn tenants(&self) -> impl Iterator<Item = &str> {
        self.iter().map(|(t, _)| t)
    }
}

impl<V> FromIterator<(String, V)> for ByTenant<V> {
    fn from_iter<I: IntoIterator<Item = (String, V)>>(iter: I) -> Self {
        let mut map = ByTenant::default();
        for (t, v) in iter {
            map.insert(&t, v);
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_tenant_and_the_others_are_kept_apart_and_iterated_in_id_order() {
        // Given tenants inserted out of order, the default one among them.
        let mut map: ByTenant<u32> = [("b", 2), ("", 0), ("a", 1)]
            .into_iter()
            .map(|(t, v)| (t.to_string(), v))
            .collect();
        // Then each is found by its id, and iteration goes as an ordered
        // map's would.
        assert_eq!(map.get(""), Some(&0));
        assert_eq!(map.get("a"), Some(&1));
        assert_eq!(map.get("c"), None);
        assert_eq!(map.tenants().collect::<Vec<_>>(), ["", "a", "b"]);
        // When the default tenant goes, the others stay.
        assert_eq!(map.remove(""), Some(0));
        assert!(!map.contains(""));
        assert_eq!(map.tenants().collect::<Vec<_>>(), ["a", "b"]);
        // And values are made only for a tenant without one.
        *map.get_or_insert_with("a", || 10) += 5;
        *map.get_or_insert_with("", || 7) += 1;
        assert_eq!(map.get("a"), Some(&6));
        assert_eq!(map.get(""), Some(&8));
        assert_eq!(map.insert("", 9), Some(8));
        for (_, v) in map.iter_mut() {
            *v *= 2;
        }
        assert_eq!(
            map.iter().collect::<Vec<_>>(),
            [("", &18), ("a", &12), ("b", &4)]
        );
        assert!(!map.is_empty());
    }
}
