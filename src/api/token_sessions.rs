//! `GET /api/v1/users/{userId}/token-sessions`: one page of a user's login sessions, and
//! [`AllTokenSessions`] to walk every page.
//!
//! Shapes from PeerTube's source: the route and its validators in
//! `server/core/controllers/api/users/token.ts` (`listTokenSessions`), the page in
//! `server/core/models/oauth/oauth-token.ts` (`listSessionsOf`, `toSessionFormattedJSON`), the
//! sort keys in `server/core/initializers/constants.ts` (`SORTABLE_COLUMNS.TOKEN_SESSIONS:
//! [ 'createdAt' ]`), the page size in `PAGINATION.GLOBAL.COUNT` (default 15, at most 100).

use super::{Endpoint, Timestamp, json_body};
use crate::error::Error;
use crate::instance::Instance;
use crate::request::{Body, api_request};
use http::{Method, Request, StatusCode};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// The largest page PeerTube serves (`PAGINATION.GLOBAL.COUNT.MAX`).
pub const MAX_PAGE_SIZE: u8 = 100;

/// The page size [`ListTokenSessions::new`] asks for: with the longest devices PeerTube stores
/// (255 characters each), 50 sessions stay under the 64 KiB body cap.
const DEFAULT_PAGE_SIZE: u8 = 50;

/// The most pages [`AllTokenSessions`] follows: 10 000 sessions at 100 a page. A server whose
/// pages never end is not followed further.
const MAX_PAGES: u32 = 100;

/// One login session of a user: a live token pair on the server.
///
/// PeerTube lists a pair only while **both** of its tokens are valid; and each refresh replaces
/// the pair, so a session's `id` and `created_at` change whenever its holder refreshes, while
/// its `login_*` members are carried over.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenSession {
    /// `id`: what [`RevokeTokenSession`](super::RevokeTokenSession) takes.
    pub id: u64,
    /// `currentSession`: whether this is the session of the token that asked.
    pub current_session: bool,
    /// `loginDevice`: the `User-Agent` of the login request, verbatim (`None` when it had
    /// none). Untrusted text: clean it before printing it to a terminal.
    pub login_device: Option<String>,
    /// `loginIP`: the address the login came from.
    #[serde(rename = "loginIP")]
    pub login_ip: Option<String>,
    /// `loginDate`.
    pub login_date: Option<Timestamp>,
    /// `lastActivityDevice`: the `User-Agent` last seen using the session. PeerTube writes
    /// activity at most once a minute, so it lags.
    pub last_activity_device: Option<String>,
    /// `lastActivityIP`.
    #[serde(rename = "lastActivityIP")]
    pub last_activity_ip: Option<String>,
    /// `lastActivityDate`.
    pub last_activity_date: Option<Timestamp>,
    /// `createdAt`: when this token pair was issued (by the login or the last refresh).
    pub created_at: Timestamp,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSession {
    id: u64,
    current_session: bool,
    #[serde(default)]
    login_device: Option<String>,
    #[serde(default, rename = "loginIP")]
    login_ip: Option<String>,
    #[serde(default)]
    login_date: Option<Timestamp>,
    #[serde(default)]
    last_activity_device: Option<String>,
    #[serde(default, rename = "lastActivityIP")]
    last_activity_ip: Option<String>,
    #[serde(default)]
    last_activity_date: Option<Timestamp>,
    created_at: Timestamp,
}

impl From<RawSession> for TokenSession {
    fn from(raw: RawSession) -> Self {
        TokenSession {
            id: raw.id,
            current_session: raw.current_session,
            login_device: raw.login_device,
            login_ip: raw.login_ip,
            login_date: raw.login_date,
            last_activity_device: raw.last_activity_device,
            last_activity_ip: raw.last_activity_ip,
            last_activity_date: raw.last_activity_date,
            created_at: raw.created_at,
        }
    }
}

/// One page: `{"total": n, "data": [...]}`.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenSessionPage {
    /// `total`: how many live sessions the user has, whatever the page.
    pub total: u64,
    /// `data`: this page's sessions.
    pub data: Vec<TokenSession>,
}

#[derive(Deserialize)]
struct RawPage {
    total: u64,
    data: Vec<RawSession>,
}

/// The order of a listing: PeerTube sorts token sessions by `createdAt` only.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SessionSort {
    /// `createdAt`: oldest first, so sessions issued while paging land on later pages.
    #[default]
    CreatedAt,
    /// `-createdAt`: newest first (the server's default when no sort is sent).
    NewestFirst,
}

impl SessionSort {
    /// The `sort` parameter as PeerTube spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionSort::CreatedAt => "createdAt",
            SessionSort::NewestFirst => "-createdAt",
        }
    }
}

/// `GET /api/v1/users/{user_id}/token-sessions?start=&count=&sort=`: one page of the
/// sessions of a user (your own, or anyone's with the right to manage users).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListTokenSessions {
    user_id: u64,
    start: u64,
    count: u8,
    sort: SessionSort,
}

impl ListTokenSessions {
    /// The first page of `user_id`'s sessions, 50 a page, oldest first.
    pub fn new(user_id: u64) -> Self {
        ListTokenSessions {
            user_id,
            start: 0,
            count: DEFAULT_PAGE_SIZE,
            sort: SessionSort::default(),
        }
    }

    /// From the `start`-th session on (0 is the first).
    pub fn start(mut self, start: u64) -> Self {
        self.start = start;
        self
    }

    /// `count` sessions a page, at most [`MAX_PAGE_SIZE`] (larger values are taken as it).
    pub fn count(mut self, count: u8) -> Self {
        self.count = count.min(MAX_PAGE_SIZE);
        self
    }

    /// In this order.
    pub fn sort(mut self, sort: SessionSort) -> Self {
        self.sort = sort;
        self
    }

    /// The user whose sessions are listed.
    pub fn user_id(&self) -> u64 {
        self.user_id
    }

    /// The index of the first session asked for.
    pub fn first(&self) -> u64 {
        self.start
    }

    /// The page size asked for.
    pub fn page_size(&self) -> u8 {
        self.count
    }
}

impl Endpoint for ListTokenSessions {
    type Output = TokenSessionPage;

    fn request(&self, instance: &Instance) -> Result<Request<Body>, Error> {
        let path = format!(
            "/api/v1/users/{}/token-sessions?start={}&count={}&sort={}",
            self.user_id,
            self.start,
            self.count,
            self.sort.as_str()
        );
        api_request(Method::GET, instance, &path)
    }

    fn parse_success(&self, status: StatusCode, body: &[u8]) -> Result<TokenSessionPage, Error> {
        let raw: RawPage = json_body(status, body)?;
        if raw.data.len() > usize::from(MAX_PAGE_SIZE) {
            return Err(Error::malformed(
                status,
                "the page holds more sessions than a page can",
            ));
        }
        let data: Vec<TokenSession> = raw.data.into_iter().map(TokenSession::from).collect();
        let seen: HashSet<u64> = data.iter().map(|s| s.id).collect();
        if seen.len() != data.len() {
            return Err(Error::malformed(status, "the page lists a session twice"));
        }
        Ok(TokenSessionPage {
            total: raw.total,
            data,
        })
    }
}

/// Walks every page of a user's sessions, sans-IO: ask for [`next_page`](Self::next_page),
/// send it, [`add`](Self::add) its answer, until `next_page` says `None`.
///
/// Sessions come and go while it walks (logins, logouts, and refreshes, which give a session a
/// new `id`), so pages are asked for oldest first (new sessions land on later pages), the next
/// one starts where the sessions received end, and a session seen twice is kept once. It ends
/// when a page comes back empty or short, or reaches the latest `total`, and after 100 pages at
/// most. Offsets cannot do better than that: a session that ends during the walk, on a page
/// already read, shifts the rest back, and the first session of the next page is then missed.
/// Walk again to be sure (the drivers' `log_out_other_sessions` does).
///
/// ```
/// use peertube_session::api::{AllTokenSessions, Endpoint, TokenSessionPage};
/// use http::StatusCode;
///
/// let mut all = AllTokenSessions::new(1).page_size(2);
/// let pages = [
///     r#"{"total":3,"data":[
///         {"id":5,"currentSession":true,"createdAt":"2026-11-28T20:55:25.744Z"},
///         {"id":6,"currentSession":false,"createdAt":"2026-11-28T20:56:00.000Z"}]}"#,
///     r#"{"total":3,"data":[
///         {"id":7,"currentSession":false,"createdAt":"2026-11-28T20:57:00.000Z"}]}"#,
/// ];
/// for body in pages {
///     let page = all.next_page().expect("more pages");
///     let answer: TokenSessionPage = page.parse_success(StatusCode::OK, body.as_bytes())?;
///     all.add(&page, answer);
/// }
/// assert!(all.next_page().is_none());
/// let ids: Vec<u64> = all.into_sessions().iter().map(|s| s.id).collect();
/// assert_eq!(ids, [5, 6, 7]);
/// # Ok::<(), peertube_session::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct AllTokenSessions {
    next: Option<ListTokenSessions>,
    pages: u32,
    seen: HashSet<u64>,
    sessions: Vec<TokenSession>,
}

impl AllTokenSessions {
    /// Every session of `user_id`.
    pub fn new(user_id: u64) -> Self {
        AllTokenSessions {
            next: Some(ListTokenSessions::new(user_id)),
            pages: 0,
            seen: HashSet::new(),
            sessions: Vec::new(),
        }
    }

    /// Asks for `count` sessions a page (1 to [`MAX_PAGE_SIZE`]; 0 is taken as 1).
    pub fn page_size(mut self, count: u8) -> Self {
        self.next = self.next.map(|page| page.count(count.max(1)));
        self
    }

    /// Walks in `sort` order instead ([`SessionSort::NewestFirst`] finds the caller's own
    /// session on the first page; oldest first is safer for a complete walk).
    pub fn sort(mut self, sort: SessionSort) -> Self {
        self.next = self.next.map(|page| page.sort(sort));
        self
    }

    /// The page to ask for next, or `None` when every page is in.
    pub fn next_page(&self) -> Option<ListTokenSessions> {
        self.next
    }

    /// Takes in the answer to `page` (the request [`next_page`](Self::next_page) gave).
    pub fn add(&mut self, page: &ListTokenSessions, answer: TokenSessionPage) {
        self.pages += 1;
        let received = u64::try_from(answer.data.len()).unwrap_or(u64::MAX);
        let end = page.first().saturating_add(received);
        for session in answer.data {
            if self.seen.insert(session.id) {
                self.sessions.push(session);
            }
        }
        // A full page (never empty: pages hold at least one) that has not reached the total.
        let more = received >= u64::from(page.page_size().max(1))
            && end < answer.total
            && self.pages < MAX_PAGES;
        self.next = more.then(|| page.start(end));
    }

    /// The sessions received so far, in the order they came.
    pub fn sessions(&self) -> &[TokenSession] {
        &self.sessions
    }

    /// Every session received.
    pub fn into_sessions(self) -> Vec<TokenSession> {
        self.sessions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: u64) -> String {
        format!(r#"{{"id":{id},"currentSession":false,"createdAt":"2026-11-28T20:55:25.744Z"}}"#)
    }

    fn page(total: u64, ids: &[u64]) -> TokenSessionPage {
        let data: Vec<String> = ids.iter().map(|&id| session(id)).collect();
        let body = format!(r#"{{"total":{total},"data":[{}]}}"#, data.join(","));
        ListTokenSessions::new(1)
            .parse_success(StatusCode::OK, body.as_bytes())
            .unwrap()
    }

    /// Serves pages of `ids` as a server would, `total` being their number; returns every page
    /// asked for and what was collected.
    fn walk(size: u8, ids: &[u64]) -> (Vec<(u64, u8)>, Vec<u64>) {
        let mut all = AllTokenSessions::new(1).page_size(size);
        let mut asked = Vec::new();
        while let Some(request) = all.next_page() {
            asked.push((request.first(), request.page_size()));
            let from = usize::try_from(request.first()).unwrap().min(ids.len());
            let to = (from + usize::from(request.page_size())).min(ids.len());
            all.add(&request, page(ids.len() as u64, &ids[from..to]));
            assert!(asked.len() < 1000);
        }
        let got = all.into_sessions().iter().map(|s| s.id).collect();
        (asked, got)
    }

    #[test]
    fn every_size_and_page_size_is_walked_once_without_gaps() {
        for size in 1..=6u8 {
            for count in 0..=13u64 {
                let ids: Vec<u64> = (100..100 + count).collect();
                let (asked, got) = walk(size, &ids);
                assert_eq!(got, ids, "page size {size}, {count} sessions");
                let pages = usize::try_from(count.div_ceil(u64::from(size)).max(1)).unwrap();
                assert_eq!(asked.len(), pages, "page size {size}, {count} sessions");
                for (index, (start, _)) in asked.iter().enumerate() {
                    assert_eq!(*start, index as u64 * u64::from(size));
                }
            }
        }
    }

    #[test]
    fn a_session_on_two_pages_is_kept_once() {
        // A session was added before the cursor between the two pages: session 2 comes again
        // at the start of the second page.
        let mut all = AllTokenSessions::new(1).page_size(2);
        let first = all.next_page().unwrap();
        all.add(&first, page(3, &[1, 2]));
        let second = all.next_page().unwrap();
        assert_eq!(second.first(), 2);
        all.add(&second, page(5, &[2, 3]));
        let third = all.next_page().unwrap();
        assert_eq!(third.first(), 4);
        all.add(&third, page(5, &[]));
        assert!(all.next_page().is_none());
        let ids: Vec<u64> = all.sessions().iter().map(|s| s.id).collect();
        assert_eq!(ids, [1, 2, 3]);
    }

    #[test]
    fn a_short_or_empty_page_ends_the_walk() {
        let mut all = AllTokenSessions::new(1).page_size(3);
        let first = all.next_page().unwrap();
        all.add(&first, page(10, &[1, 2]));
        assert!(
            all.next_page().is_none(),
            "a page shorter than asked is the last"
        );
        let mut all = AllTokenSessions::new(1).page_size(3);
        let first = all.next_page().unwrap();
        all.add(&first, page(10, &[]));
        assert!(all.next_page().is_none(), "an empty page is the last");
    }

    #[test]
    fn a_server_whose_pages_never_end_is_left_after_100_pages() {
        let mut all = AllTokenSessions::new(1).page_size(1);
        let mut pages = 0u64;
        while let Some(request) = all.next_page() {
            pages += 1;
            all.add(&request, page(u64::MAX, &[pages]));
            assert!(pages <= 1000);
        }
        assert_eq!(pages, 100);
    }

    #[test]
    fn the_request_names_user_page_and_order() {
        let instance = Instance::new("https://video.example.org/tube").unwrap();
        let list = ListTokenSessions::new(7)
            .start(30)
            .count(250)
            .sort(SessionSort::NewestFirst);
        let request = list.request(&instance).unwrap();
        assert_eq!(request.method(), Method::GET);
        assert_eq!(
            request.uri(),
            "https://video.example.org/tube/api/v1/users/7/token-sessions?start=30&count=100&sort=-createdAt"
        );
        assert!(request.headers().get(http::header::AUTHORIZATION).is_none());
        assert_eq!(
            AllTokenSessions::new(7)
                .page_size(0)
                .next_page()
                .unwrap()
                .page_size(),
            1
        );
    }

    #[test]
    fn malformed_pages_are_refused() {
        let list = ListTokenSessions::new(1);
        let too_many: Vec<String> = (0..101).map(session).collect();
        let bodies = [
            r#"{"data":[]}"#.to_owned(),
            r#"{"total":1}"#.to_owned(),
            r#"{"total":-1,"data":[]}"#.to_owned(),
            r#"{"total":1,"data":[{"currentSession":true,"createdAt":"2026-11-28T20:55:25.744Z"}]}"#
                .to_owned(),
            r#"{"total":1,"data":[{"id":1,"createdAt":"2026-11-28T20:55:25.744Z"}]}"#.to_owned(),
            r#"{"total":1,"data":[{"id":1,"currentSession":true}]}"#.to_owned(),
            r#"{"total":1,"data":[{"id":1,"currentSession":true,"createdAt":"soon"}]}"#.to_owned(),
            r#"{"total":1,"data":[{"id":1,"currentSession":"yes","createdAt":"2026-11-28T20:55:25.744Z"}]}"#
                .to_owned(),
            r#"{"total":1,"data":[{"id":1,"currentSession":true,"createdAt":"2026-11-28T20:55:25.744Z","loginIP":7}]}"#
                .to_owned(),
            format!(r#"{{"total":2,"data":[{},{}]}}"#, session(1), session(1)),
            format!(r#"{{"total":101,"data":[{}]}}"#, too_many.join(",")),
        ];
        for body in bodies {
            let parsed = list.parse_success(StatusCode::OK, body.as_bytes());
            assert!(
                matches!(parsed, Err(Error::MalformedResponse { .. })),
                "{body}"
            );
        }
    }
}
