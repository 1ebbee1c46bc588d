//! The application interface: [`Application`] and [`from_fn`].

use std::sync::Arc;

use super::body::AppResult;
use super::environ::Environ;
use super::response::StartResponse;

/// A WSGI application: called once per request, on the connection's coroutine (blocking calls
/// inside are fine), with the request's environ and the `start_response` callable; returns the
/// body.
///
/// Implemented for every `Fn(&mut Environ, &mut StartResponse<'_>) -> AppResult + Send + Sync +
/// 'static`, so a plain function is an application:
///
/// ```
/// use may_gevent::pywsgi::{AppResult, Environ, StartResponse};
///
/// fn application(env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
///     if env.path_info() == "/" {
///         start_response.call("200 OK", &[("Content-Type", "text/html")])?;
///         return Ok(vec![b"<b>hello world</b>".to_vec()].into());
///     }
///     start_response.call("404 Not Found", &[("Content-Type", "text/html")])?;
///     Ok(vec![b"<h1>Not Found</h1>".to_vec()].into())
/// }
/// # fn is_app<A: may_gevent::pywsgi::Application>(_: A) {}
/// # is_app(application);
/// ```
///
/// A panic in the application is caught and treated like an error (500, or close), except the
/// panic `may` uses to cancel a coroutine, which is propagated.
///
/// gevent: the `application` callable of `WSGIServer`.
pub trait Application: Send + Sync + 'static {
    /// Handles one request. gevent: `application(environ, start_response)`.
    fn call(&self, env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult;
}

impl<F> Application for F
where
    F: Fn(&mut Environ, &mut StartResponse<'_>) -> AppResult + Send + Sync + 'static,
{
    fn call(&self, env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
        self(env, start_response)
    }
}

impl<A: Application + ?Sized> Application for Arc<A> {
    fn call(&self, env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
        (**self).call(env, start_response)
    }
}

/// Turns a closure into an [`Application`], helping type inference of its arguments:
/// `from_fn(|env, start_response| { ... })`.
pub fn from_fn<F>(f: F) -> F
where
    F: Fn(&mut Environ, &mut StartResponse<'_>) -> AppResult + Send + Sync + 'static,
{
    f
}
