// Every script error, rejected promise and Content-Security-Policy
// violation of the page, kept for the health line and for tests (which
// read window.trafficscopeErrors): a page that fails quietly is worse than
// one that says so.

const errors = [];
window.trafficscopeErrors = errors;
window.addEventListener('error', (e) => errors.push(`error: ${e.message} (${e.filename}:${e.lineno})`));
window.addEventListener('unhandledrejection', (e) => errors.push(`unhandled rejection: ${e.reason && e.reason.message ? e.reason.message : e.reason}`));
document.addEventListener('securitypolicyviolation', (e) => errors.push(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`));
export default errors;
