//! Repository names and the small ids index keys carry instead: the default namespace is id
//! [`DEFAULT_REPO`] (0) and has no entry; a named repository gets the next id the first time a
//! record names it, in the transaction that stores the record, and keeps it forever.

use std::collections::HashMap;

use redb::{ReadableTable, Table};

use super::StoreError;
use super::tables::{DEFAULT_REPO, REPO_NAMES, REPOS};
use crate::model::Repo;

/// The id of `repo` in a read snapshot, `None` when no record ever named it (so nothing is
/// stored under it).
pub(super) fn lookup(
    repos: &impl ReadableTable<&'static str, u32>,
    repo: &Repo,
) -> Result<Option<u32>, StoreError> {
    lookup_name(repos, repo.as_str())
}

/// The id of the repository named `name` as records store it (empty for the default
/// namespace), `None` when no record ever named it.
pub(super) fn lookup_name(
    repos: &impl ReadableTable<&'static str, u32>,
    name: &str,
) -> Result<Option<u32>, StoreError> {
    match name {
        "" => Ok(Some(DEFAULT_REPO)),
        name => Ok(repos.get(name)?.map(|id| id.value())),
    }
}

/// The name of repository `id` (empty for the default namespace).
pub(super) fn name_of(
    names: &impl ReadableTable<u32, &'static str>,
    id: u32,
) -> Result<String, StoreError> {
    if id == DEFAULT_REPO {
        return Ok(String::new());
    }
    Ok(names
        .get(id)?
        .map(|name| name.value().to_owned())
        .unwrap_or_default())
}

/// Ids for a write transaction: looked up once per name, new ones assigned on first use.
pub(super) struct RepoIds<'txn> {
    repos: Table<'txn, &'static str, u32>,
    names: Table<'txn, u32, &'static str>,
    known: HashMap<String, u32>,
}

impl<'txn> RepoIds<'txn> {
    pub(super) fn open(txn: &'txn redb::WriteTransaction) -> Result<RepoIds<'txn>, StoreError> {
        Ok(RepoIds {
            repos: txn.open_table(REPOS)?,
            names: txn.open_table(REPO_NAMES)?,
            known: HashMap::new(),
        })
    }

    /// The id of a repository named by a record being stored, assigning one if it is new.
    pub(super) fn id_for_write(&mut self, repo: &str) -> Result<u32, StoreError> {
        if repo.is_empty() {
            return Ok(DEFAULT_REPO);
        }
        if let Some(&id) = self.known.get(repo) {
            return Ok(id);
        }
        let stored = self.repos.get(repo)?.map(|id| id.value());
        let id = match stored {
            Some(id) => id,
            None => {
                let last = self
                    .names
                    .last()?
                    .map_or(DEFAULT_REPO, |(id, _)| id.value());
                let id = last + 1;
                self.repos.insert(repo, id)?;
                self.names.insert(id, repo)?;
                id
            }
        };
        self.known.insert(repo.to_owned(), id);
        Ok(id)
    }

    /// The id of a repository a record being deleted names (it has one: the record was
    /// stored under it).
    pub(super) fn id_of_stored(&mut self, repo: &str) -> Result<u32, StoreError> {
        self.id_for_write(repo)
    }
}
