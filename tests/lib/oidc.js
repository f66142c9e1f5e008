// The SMART authorization server of the tests is the demo's (oidc-provider on 127.0.0.1).
export { startAuthServer } from "../../demo-app/server/auth.js";
