//! `#[cached]` on methods: one cache per method, shared by every instance, keyed by what
//! `convert` says (which may read `self`).

use memoflight::cached;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

struct Db {
    id: u64,
    queries: AtomicU64,
}

impl Db {
    fn new(id: u64) -> Self {
        Db {
            id,
            queries: AtomicU64::new(0),
        }
    }

    /// Keyed by the instance's id and the argument: instances do not share results.
    #[cached(convert = (self.id, user), key = (u64, u32))]
    fn user_name(&self, user: u32) -> String {
        self.queries.fetch_add(1, SeqCst);
        format!("db{}:user{user}", self.id)
    }

    /// Keyed by the argument alone: every instance shares the results.
    #[cached(convert = n)]
    pub fn square(&self, n: u64) -> u64 {
        self.queries.fetch_add(1, SeqCst);
        n * n
    }

    /// A `Result` method with a bounded cache.
    #[cached(convert = text, max_size = 10)]
    fn parse(&self, text: &str) -> Result<u32, String> {
        text.parse().map_err(|_| format!("not a number: {text}"))
    }
}

#[test]
fn a_method_keyed_by_self_keeps_instances_apart() {
    let (a, b) = (Db::new(1), Db::new(2));
    assert_eq!(a.user_name(7), "db1:user7");
    assert_eq!(a.user_name(7), "db1:user7");
    assert_eq!(b.user_name(7), "db2:user7");
    assert_eq!(a.queries.load(SeqCst), 1);
    assert_eq!(b.queries.load(SeqCst), 1);
    assert_eq!(Db::user_name_cache().len(), 2);
    assert_eq!(
        Db::user_name_cache().remove(&(1, 7)).as_deref(),
        Some("db1:user7")
    );
    assert_eq!(a.user_name_no_cache(7), "db1:user7");
    assert_eq!(a.queries.load(SeqCst), 2);
}

#[test]
fn a_method_keyed_by_its_arguments_shares_results_across_instances() {
    let (a, b) = (Db::new(1), Db::new(2));
    assert_eq!(a.square(9), 81);
    assert_eq!(b.square(9), 81);
    assert_eq!(a.queries.load(SeqCst) + b.queries.load(SeqCst), 1);
    let (value, origin) = b.square_with_origin(9);
    assert_eq!((value, origin), (81, memoflight::Origin::Hit));
}

#[test]
fn method_options_work_as_on_functions() {
    let db = Db::new(3);
    assert_eq!(db.parse("12"), Ok(12));
    assert!(db.parse("x").is_err());
    assert_eq!(Db::parse_cache().len(), 1, "errors are not cached");
}

#[test]
fn concurrent_calls_of_a_method_run_once() {
    let db = Db::new(4);
    std::thread::scope(|s| {
        for _ in 0..16 {
            s.spawn(|| db.user_name(99));
        }
    });
    assert_eq!(db.queries.load(SeqCst), 1);
}

#[cfg(feature = "async")]
mod asynchronous {
    use super::*;

    struct Client {
        fetches: AtomicU64,
    }

    impl Client {
        #[cached(convert = url)]
        async fn fetch(&self, url: &str) -> Vec<u8> {
            self.fetches.fetch_add(1, SeqCst);
            tokio::task::yield_now().await;
            url.as_bytes().to_vec()
        }
    }

    #[test]
    fn an_async_method_runs_once_for_concurrent_tasks() {
        let client = Client {
            fetches: AtomicU64::new(0),
        };
        let calls = futures::future::join_all((0..20).map(|_| client.fetch("/a")));
        let results = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(calls);
        assert!(results.iter().all(|r| r == b"/a"));
        assert_eq!(client.fetches.load(SeqCst), 1);
        assert_eq!(Client::fetch_cache().stats().waits, 19);
    }
}

#[cfg(feature = "async")]
mod async_trait_methods {
    use super::*;

    #[async_trait::async_trait]
    trait Catalog {
        async fn title(&self, id: u32) -> String;
        async fn price(&self, id: u32) -> Result<u32, String>;
    }

    struct Shop {
        lookups: AtomicU64,
    }

    #[async_trait::async_trait]
    impl Catalog for Shop {
        /// The value is cached, not the boxed future `#[async_trait]` turns it into.
        #[cached(convert = id)]
        async fn title(&self, id: u32) -> String {
            self.lookups.fetch_add(1, SeqCst);
            tokio::task::yield_now().await;
            format!("title {id}")
        }

        #[cached(convert = id)]
        async fn price(&self, id: u32) -> Result<u32, String> {
            self.lookups.fetch_add(1, SeqCst);
            if id == 0 {
                return Err("no such item".to_string());
            }
            Ok(id * 100)
        }
    }

    #[test]
    fn an_async_trait_method_caches_its_value_once_for_concurrent_tasks() {
        let shop = Shop {
            lookups: AtomicU64::new(0),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let titles = runtime.block_on(futures::future::join_all((0..20).map(|_| shop.title(7))));
        assert!(titles.iter().all(|t| t == "title 7"));
        assert_eq!(shop.lookups.load(SeqCst), 1);
        // Through a trait object too; and the boxed future is `Send` (spawnable).
        let shop: std::sync::Arc<dyn Catalog + Send + Sync> = std::sync::Arc::new(Shop {
            lookups: AtomicU64::new(0),
        });
        let spawned = runtime.spawn({
            let shop = shop.clone();
            async move { shop.title(8).await }
        });
        assert_eq!(runtime.block_on(spawned).unwrap(), "title 8");
        assert_eq!(runtime.block_on(shop.title(8)), "title 8");
    }

    #[test]
    fn an_async_trait_method_keeps_the_result_rules() {
        let shop = Shop {
            lookups: AtomicU64::new(0),
        };
        futures::executor::block_on(async {
            assert_eq!(shop.price(2).await, Ok(200));
            assert_eq!(shop.price(2).await, Ok(200));
            assert!(shop.price(0).await.is_err());
            assert!(shop.price(0).await.is_err());
        });
        assert_eq!(shop.lookups.load(SeqCst), 3, "Ok cached once, Err retried");
    }
}
