//! Runs a TLS test once per TLS backend built (`tls`: native-tls, `rustls`: rustls).
//!
//! A test is written once as `fn name(backend: TlsBackend)` and listed in
//! `per_tls_backend!(name, ...)`, which makes `#[test] with_native_tls::name` and
//! `#[test] with_rustls::name` calling it with `TlsBackend::NativeTls` / `TlsBackend::Rustls`, each
//! only where its feature is built (with `--all-features`, both).

/// See the module documentation.
#[macro_export]
macro_rules! per_tls_backend {
    ($($name:ident),* $(,)?) => {
        #[cfg(feature = "tls")]
        mod with_native_tls {
            $(
                #[test]
                fn $name() {
                    super::$name(mqtt_sync::TlsBackend::NativeTls)
                }
            )*
        }
        #[cfg(feature = "rustls")]
        mod with_rustls {
            $(
                #[test]
                fn $name() {
                    super::$name(mqtt_sync::TlsBackend::Rustls)
                }
            )*
        }
    };
}
