//! Listings: a stream of pages that ends when Monite gives no next token, and stops with
//! an error when Monite gives a token it gave before, or gives
//! [`MAX_EMPTY_PAGES`] empty pages in a row that each point to a next one (it would never
//! end otherwise).

use std::collections::HashSet;

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt as _, stream};
use http::Method;
use serde_json::value::RawValue;

use super::Client;
use super::models::{ListQuery, Page};
use super::request::{Request, parse};
use crate::error::{Error, ErrorKind, Result};

/// How many empty pages in a row, each with a next token, a listing takes before it stops
/// with an error: a server handing out a new token with every empty page would otherwise
/// keep a listing (and a recovery) going forever. A page with items starts the count again.
pub const MAX_EMPTY_PAGES: usize = 16;

/// Where a listing goes on from.
enum Cursor {
    First(ListQuery),
    // Monite infers every other parameter from the token.
    Token(String),
}

impl Cursor {
    fn request<'a>(&self, path: String, entity_id: Option<&'a str>) -> Request<'a> {
        let query = match self {
            Self::First(query) => query.params.clone(),
            Self::Token(token) => vec![("pagination_token", token.clone())],
        };
        let mut request = Request::new(Method::GET, path).query(query);
        request.entity_id = entity_id;
        request
    }
}

/// The tokens a listing was given, to catch a server that hands one out again.
#[derive(Default)]
struct SeenTokens(HashSet<String>);

impl SeenTokens {
    /// Records `token` (a listing's next page), or refuses it if it came before.
    ///
    /// # Errors
    /// [`ErrorKind::Api`] naming the path, if `token` was given before.
    fn check(&mut self, path: &str, token: &str) -> Result<()> {
        if self.0.insert(token.to_owned()) {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Api,
                format!("GET {path}: Monite gave the pagination token {token:?} a second time"),
            ))
        }
    }
}

impl Client {
    /// One page of a listing: the items, each with its raw JSON, and the next page's token.
    pub(super) async fn page(&self, request: &Request<'_>) -> Result<(Vec<Bytes>, Option<String>)> {
        let body = self.send(request).await?;
        let page: Page<&RawValue> = parse(request, &body)?;
        // Each item is a slice of the page's body: events borrow from it, nothing is copied.
        let items = page
            .data
            .iter()
            .map(|raw| {
                let (start, end) = span_in(&body, raw.get().as_bytes()).ok_or_else(|| {
                    Error::new(ErrorKind::Api, "a page item was not found in the page")
                })?;
                Ok(body.slice(start..end))
            })
            .collect::<Result<Vec<_>>>()?;
        let next = page.next_pagination_token.filter(|t| !t.is_empty());
        Ok((items, next))
    }

    /// Every item of a listing, fetching pages as the stream is read.
    pub(super) fn paginate<'a, T: Send + 'a>(
        &'a self,
        path: String,
        entity_id: Option<&'a str>,
        query: ListQuery,
        item: impl Fn(Bytes) -> Result<T> + Send + Sync + 'a,
    ) -> impl Stream<Item = Result<T>> + Send + 'a {
        let pages = Pages::new(self, path, entity_id, query);
        stream::try_unfold(pages, |mut pages| async move {
            Ok(pages.next().await?.map(|(items, _)| (items, pages)))
        })
        .map_ok(|items| stream::iter(items.into_iter().map(Ok)))
        .try_flatten()
        .and_then(move |raw| std::future::ready(item(raw)))
    }
}

/// A listing's pages, one at a time: each page's request follows the token the one before
/// gave, and a token given a second time stops the walk with an error.
pub(super) struct Pages<'a> {
    client: &'a Client,
    path: String,
    entity_id: Option<&'a str>,
    cursor: Option<Cursor>,
    seen: SeenTokens,
    /// Empty pages in a row that gave a next token.
    empty_in_a_row: usize,
}

impl<'a> Pages<'a> {
    /// A listing's pages from the first.
    pub(super) fn new(
        client: &'a Client,
        path: String,
        entity_id: Option<&'a str>,
        query: ListQuery,
    ) -> Self {
        Self {
            client,
            path,
            entity_id,
            cursor: Some(Cursor::First(query)),
            seen: SeenTokens::default(),
            empty_in_a_row: 0,
        }
    }

    /// A listing's pages from the one `token` (a page's next token) points to; that token
    /// counts as given, so a page handing it out again stops the walk.
    pub(super) fn resume(
        client: &'a Client,
        path: String,
        entity_id: Option<&'a str>,
        token: String,
    ) -> Self {
        let mut seen = SeenTokens::default();
        seen.0.insert(token.clone());
        Self {
            client,
            path,
            entity_id,
            cursor: Some(Cursor::Token(token)),
            seen,
            empty_in_a_row: 0,
        }
    }

    /// The next page's items and the token of the page after it, or `None` once the page
    /// without a next token was given. After an error there are no more pages.
    ///
    /// # Errors
    /// The page's request failing, or Monite giving a token it gave before, or
    /// [`MAX_EMPTY_PAGES`] empty pages in a row each with a next token
    /// ([`ErrorKind::Api`]).
    pub(super) async fn next(&mut self) -> Result<Option<(Vec<Bytes>, Option<String>)>> {
        let Some(cursor) = self.cursor.take() else {
            return Ok(None);
        };
        let request = cursor.request(self.path.clone(), self.entity_id);
        let (items, next) = self.client.page(&request).await?;
        if let Some(token) = &next {
            self.seen.check(&self.path, token)?;
            self.empty_in_a_row = if items.is_empty() {
                self.empty_in_a_row + 1
            } else {
                0
            };
            if self.empty_in_a_row >= MAX_EMPTY_PAGES {
                return Err(Error::new(
                    ErrorKind::Api,
                    format!(
                        "GET {}: Monite gave {MAX_EMPTY_PAGES} empty pages in a row, each \
                         pointing to another",
                        self.path
                    ),
                ));
            }
            self.cursor = Some(Cursor::Token(token.clone()));
        }
        Ok(Some((items, next)))
    }
}

/// Where `part`, a slice borrowed from `body`, sits in it.
fn span_in(body: &[u8], part: &[u8]) -> Option<(usize, usize)> {
    let start = part.as_ptr().addr().checked_sub(body.as_ptr().addr())?;
    let end = start.checked_add(part.len())?;
    (end <= body.len()).then_some((start, end))
}
