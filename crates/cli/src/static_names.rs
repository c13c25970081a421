//! Per-packet counters under static names (protocol, service, direction):
//! a short scan comparing pointers, so the hot loop neither allocates nor
//! compares strings (string-keyed maps cost more than decoding). Used by
//! `stats` and `analyze`.

/// Values under `(group, key)` pairs of static strings, in first-seen order.
pub struct ByStaticName<V> {
    entries: Vec<(&'static str, &'static str, V)>,
}

impl<V> Default for ByStaticName<V> {
    fn default() -> Self {
        ByStaticName {
            entries: Vec::new(),
        }
    }
}

impl<V> ByStaticName<V> {
    /// The value under `(group, key)`, made by `make` the first time. A name
    /// equal to one seen before but from another static location finds the
    /// same value (a content compare, only on a pointer miss).
    #[inline]
    pub fn get_or_insert_with(
        &mut self,
        group: &'static str,
        key: &'static str,
        make: impl FnOnce() -> V,
    ) -> &mut V {
        let found = self
            .entries
            .iter()
            .position(|e| std::ptr::eq(e.0, group) && std::ptr::eq(e.1, key))
            .or_else(|| self.entries.iter().position(|e| e.0 == group && e.1 == key));
        let i = found.unwrap_or_else(|| {
            self.entries.push((group, key, make()));
            self.entries.len() - 1
        });
        &mut self.entries[i].2
    }

    pub fn iter(&self) -> impl Iterator<Item = &(&'static str, &'static str, V)> {
        self.entries.iter()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut (&'static str, &'static str, V)> {
        self.entries.iter_mut()
    }

    pub fn into_iter(self) -> impl Iterator<Item = (&'static str, &'static str, V)> {
        self.entries.into_iter()
    }
}
