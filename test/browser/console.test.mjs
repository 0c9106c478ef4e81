// Browser tests of elevate's web console.
//
// They start the built binary (bin/elevate, or $ELEVATE_BIN) with
// `serve --dev` in a temporary data directory, drive the system's chromium
// (/usr/bin/chromium, or $CHROMIUM) with playwright-core, and stop
// everything at the end. Several people sign in through the dev issuer's
// picker, each in a browser context of their own, and the requester's
// gated call goes through the proxy listener with a token of the same
// subject. Screenshots are written to test/browser/artifacts/; with
// ELEVATE_DOCS_SCREENSHOT=1 the inbox is also copied to
// docs/img/console-inbox.png. elevate's own output goes to
// artifacts/elevate.log.
//
// Run with `make browser` (which builds the binary first).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..", "..");
const binary = process.env.ELEVATE_BIN || path.join(root, "bin", "elevate");
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
const artifacts = path.join(here, "artifacts");
const traceTemplate = "http://localhost:16686/trace/{trace_id}";

const moveTask = "Exchange\\New-MoveRequest";
const searchTask = "Exchange\\Search-Mailbox";
const journalTask = "Exchange\\New-JournalRule";
const removeTask = "Exchange\\Remove-JournalRule";

let elevate; // the child process
let output = ""; // its stdout and stderr, for failures
let dataDir;
let control; // http://127.0.0.1:PORT of the control listener
let proxy; // of the proxy listener
let browser;
const ids = {}; // request ids by name, shared by the steps
// Errors the pages wrote to the browser console, and the failed loads the
// tests caused on purpose (a refused form, a forged fetch): any other
// error, such as a missing favicon or a CSP violation, fails the run.
const consoleErrors = [];
const expectedFailures = new Set();

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// eventually retries fn until it returns true, for asynchronous effects
// (the proxy's view of grants follows etcd within milliseconds).
async function eventually(fn, what, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function token(sub, groups) {
  const args = ["token", "--sub", sub, "--data-dir", dataDir];
  if (groups) args.push("--groups", groups);
  return execFileSync(binary, args, { encoding: "utf8" }).trim();
}

// gatedCall is the requester's privileged call through the proxy listener.
async function gatedCall(tok) {
  const res = await fetch(`${proxy}/exchange/mailboxes/alice/move-requests`, {
    method: "POST",
    headers: { Authorization: `Bearer ${tok}` },
  });
  await res.arrayBuffer();
  return res.status;
}

async function shot(page, name, opts = {}) {
  const file = path.join(artifacts, name);
  await page.screenshot({ path: file, fullPage: true, ...opts });
  return file;
}

// signIn opens a browser context of its own and signs user in through the
// authorization code flow and the dev issuer's picker.
async function signIn(user, viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport, baseURL: control });
  const page = await context.newPage();
  page.on("dialog", (d) => d.accept());
  watch(page);
  await page.goto("/");
  await page.getByRole("link", { name: "Sign in" }).click();
  await page.getByRole("button", { name: new RegExp(`^${user}\\b`) }).click();
  await page.waitForURL(`${control}/`);
  assert.equal(await page.getByTestId("subject").textContent(), user);
  return { context, page };
}

// watch records page's console errors and the answers of 400 or more
// that the page itself asked for (documents and fetches).
function watch(page) {
  page.on("console", (m) => {
    if (m.type() === "error") consoleErrors.push({ text: m.text(), url: m.location().url, on: page.url() });
  });
  page.on("response", (r) => {
    if (r.status() >= 400 && ["document", "fetch"].includes(r.request().resourceType())) expectedFailures.add(r.url());
  });
}

// fitsWidth says, for each width, whether page needs no sideways
// scrolling: true, or the outermost elements that stick out.
async function fitsWidth(page, widths = [1280, 390]) {
  const out = {};
  for (const width of widths) {
    await page.setViewportSize({ width, height: 800 });
    out[width] = await page.evaluate(() => {
      if (document.documentElement.scrollWidth <= window.innerWidth) return true;
      const wide = [...document.body.querySelectorAll("*")].filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1);
      return wide.filter((el) => !wide.includes(el.parentElement))
        .map((el) => `${el.tagName.toLowerCase()}.${el.className} ${Math.round(el.getBoundingClientRect().width)}px`).join(", ");
    });
  }
  await page.setViewportSize({ width: 1280, height: 800 });
  return out;
}

// textareas are the values of the page's comment boxes.
async function textareas(page) {
  return page.locator("textarea").evaluateAll((ts) => ts.map((t) => t.value));
}

async function flash(page) {
  return (await page.getByRole("status").first().textContent()).trim();
}

async function statusOf(page) {
  return (await page.getByTestId("status").textContent()).trim();
}

// The whole run is bounded: a hang stops elevate and fails.
const deadline = setTimeout(() => {
  console.error("browser tests: over 150s, giving up");
  if (elevate) elevate.kill("SIGKILL");
  process.exit(1);
}, 150000);
deadline.unref();

before(async () => {
  assert.ok(existsSync(binary), `${binary} is missing: run \`make build\` first`);
  assert.ok(existsSync(chromiumPath), `${chromiumPath} is missing: install chromium (apt-get install -y chromium)`);
  mkdirSync(artifacts, { recursive: true });
  dataDir = mkdtempSync(path.join(os.tmpdir(), "elevate-browser-"));
  const cfg = path.join(dataDir, "elevate.yaml");
  writeFileSync(cfg, `console:\n  trace_url: "${traceTemplate}"\n`);
  const [pp, cp] = [await freePort(), await freePort()];
  proxy = `http://127.0.0.1:${pp}`;
  control = `http://127.0.0.1:${cp}`;
  elevate = spawn(binary, ["serve", "--dev", "--config", cfg, "--data-dir", dataDir,
    "--proxy-addr", `127.0.0.1:${pp}`, "--control-addr", `127.0.0.1:${cp}`], { stdio: ["ignore", "pipe", "pipe"] });
  elevate.stdout.on("data", (b) => { output += b; });
  elevate.stderr.on("data", (b) => { output += b; });
  let exited = null;
  elevate.on("exit", (code, sig) => { exited = `exited (${code ?? sig})`; });
  await eventually(async () => {
    if (exited) assert.fail(`elevate ${exited} before it was ready:\n${output}`);
    try {
      return (await fetch(`${control}/readyz`)).status === 200;
    } catch {
      return false;
    }
  }, "elevate to be ready", 30000);
  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
}, { timeout: 60000 });

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (elevate && elevate.exitCode === null && elevate.signalCode === null) {
    const done = new Promise((r) => elevate.once("exit", r));
    elevate.kill("SIGTERM");
    const timer = setTimeout(() => elevate.kill("SIGKILL"), 10000);
    await done;
    clearTimeout(timer);
  }
  if (output) writeFileSync(path.join(artifacts, "elevate.log"), output);
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
}, { timeout: 30000 });

let ada, bob, eve; // { context, page } of each person

test("an admin enables access control and creates policies", async () => {
  ada = await signIn("ada");
  const page = ada.page;
  // The skip link comes first in the focus order and leads to the content.
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.textContent), "Skip to content");

  await page.getByRole("link", { name: "Access control" }).click();
  await page.getByLabel("Access control enabled").check();
  await page.getByLabel("Default approver group").fill("approvers");
  await page.getByRole("button", { name: "Save settings" }).click();
  assert.equal(await flash(page), "Access control settings saved.");
  assert.equal(await page.getByTestId("control-enabled").textContent(), "enabled");

  await page.getByRole("link", { name: "Policies" }).click();
  for (const task of [moveTask, searchTask, journalTask]) {
    await page.getByLabel("Target").fill(task);
    await page.getByRole("button", { name: "Create policy" }).click();
    assert.equal(await flash(page), `Policy created for ${task}.`);
  }
  assert.equal(await page.locator("tr[data-policy]").count(), 3);
});

test("a requester submits and is refused until approved", async () => {
  const bobToken = token("bob");
  assert.equal(await gatedCall(bobToken), 403, "no grant yet");
  bob = await signIn("bob");
  const page = bob.page;
  await page.getByRole("link", { name: "My requests" }).click();
  await page.getByLabel("What you need").selectOption(`task:${moveTask}`);
  await page.getByLabel("Reason").fill("move alice to DB02 (change 4711)");
  await page.getByLabel("Duration").fill("10m");
  // Submitted with the keyboard.
  await page.getByLabel("Start (optional)").focus();
  await page.keyboard.press("Tab");
  await page.keyboard.press("Enter");
  await page.waitForURL(/\/requests\/req-/);
  ids.move = page.url().split("/").pop();
  assert.equal(await flash(page), "Request submitted; it waits for approval.");
  assert.equal(await statusOf(page), "pending");
  assert.equal(await page.getByRole("button", { name: "Approve" }).count(), 0, "no approving one's own request");
  await shot(page, "request-submitted.png");

  await page.goto("/requests");
  await page.getByLabel("What you need").selectOption(`task:${searchTask}`);
  await page.getByLabel("Reason").fill("search for case 88");
  await page.getByRole("button", { name: "Submit request" }).click();
  await page.waitForURL(/\/requests\/req-/);
  ids.search = page.url().split("/").pop();

  eve = await signIn("eve");
  await eve.page.goto("/requests");
  await eve.page.getByLabel("What you need").selectOption(`task:${journalTask}`);
  await eve.page.getByLabel("Reason").fill("journal the legal hold mailboxes");
  await eve.page.getByLabel("Duration").fill("2h");
  await eve.page.getByRole("button", { name: "Submit request" }).click();
  await eve.page.waitForURL(/\/requests\/req-/);
  ids.journal = eve.page.url().split("/").pop();
  assert.equal(await gatedCall(bobToken), 403, "still no grant");
});

test("an approver approves with a comment; the requester sees it and the call passes", async () => {
  const page = ada.page;
  await page.goto("/");
  const rows = page.locator("tr[data-request]");
  assert.equal(await rows.count(), 3);
  const row = page.locator(`tr[data-request="${ids.move}"]`);
  assert.match(await row.textContent(), /bob[\s\S]*New-MoveRequest[\s\S]*move alice to DB02[\s\S]*10m[\s\S]*0 of 1/);
  await shot(page, "inbox.png");
  // The README's picture: the page down to the end of the table.
  const table = await page.locator(".table-wrap").boundingBox();
  const cropped = await shot(page, "inbox-readme.png", {
    fullPage: false, clip: { x: 0, y: 0, width: 1280, height: Math.ceil(table.y + table.height + 24) },
  });
  if (process.env.ELEVATE_DOCS_SCREENSHOT === "1") {
    mkdirSync(path.join(root, "docs", "img"), { recursive: true });
    copyFileSync(cropped, path.join(root, "docs", "img", "console-inbox.png"));
  }

  await row.getByRole("link", { name: /Review/ }).click();
  await page.getByLabel("Comment").fill("ok, change 4711");
  await page.getByRole("button", { name: "Approve" }).click();
  assert.equal(await flash(page), "Request approved.");
  assert.equal(await statusOf(page), "approved");
  await shot(page, "approved.png");

  await bob.page.goto(`/requests/${ids.move}`);
  assert.equal(await statusOf(bob.page), "approved");
  assert.match(await bob.page.locator("ol.history").textContent(), /Approved by ada[\s\S]*ok, change 4711/);
  await shot(bob.page, "requester-sees-approval.png");

  const bobToken = token("bob");
  await eventually(async () => (await gatedCall(bobToken)) === 201, "the gated call to pass");
});

test("an approver denies with a comment", async () => {
  const page = ada.page;
  await page.goto(`/requests/${ids.search}`);
  await page.getByLabel("Comment").fill("not without a case number");
  await page.getByRole("button", { name: "Deny" }).click();
  assert.equal(await flash(page), "Request denied.");
  assert.equal(await statusOf(page), "denied");
  await bob.page.goto(`/requests/${ids.search}`);
  assert.equal(await statusOf(bob.page), "denied");
  assert.match(await bob.page.locator("ol.history").textContent(), /Denied by ada[\s\S]*not without a case number/);
  await shot(bob.page, "denied.png");
});

test("an approver revokes the grant; the call is refused again", async () => {
  const page = ada.page;
  await page.goto(`/requests/${ids.move}`);
  await page.getByLabel("Comment", { exact: true }).fill("move done");
  await page.getByRole("button", { name: "Revoke grant" }).click();
  assert.equal(await flash(page), "Grant revoked.");
  assert.equal(await statusOf(page), "revoked");
  await shot(page, "revoked.png");
  const bobToken = token("bob");
  await eventually(async () => (await gatedCall(bobToken)) === 403, "the gated call to be refused");
});

test("someone outside the approver group sees no approve control, and a forged approve is refused", async () => {
  // Bob asks again; eve (auditors) may read the request but not decide it.
  await bob.page.goto("/requests");
  await bob.page.getByLabel("What you need").selectOption(`task:${moveTask}`);
  await bob.page.getByLabel("Reason").fill("second batch");
  await bob.page.getByRole("button", { name: "Submit request" }).click();
  await bob.page.waitForURL(/\/requests\/req-/);
  const id = bob.page.url().split("/").pop();
  ids.second = id;

  const page = eve.page;
  await page.goto(`/requests/${id}`);
  assert.equal(await statusOf(page), "pending");
  assert.equal(await page.getByRole("button", { name: "Approve" }).count(), 0);
  assert.equal(await page.getByRole("button", { name: "Deny" }).count(), 0);
  await page.goto("/");
  assert.equal(await page.locator(`tr[data-request="${id}"]`).count(), 0, "not in eve's inbox");
  await page.goto(`/requests/${id}`);
  await shot(page, "outsider.png");

  // From eve's page, with her session cookie and CSRF token: the browser
  // sets the console's Origin; the API refuses.
  const forged = await page.evaluate(async (target) => {
    const csrf = document.querySelector('input[name="csrf"]').value;
    const post = async (body) => {
      const res = await fetch(target, { method: "POST", body: new URLSearchParams(body) });
      return { status: res.status, text: await res.text() };
    };
    return {
      withToken: await post({ csrf, comment: "forged" }),
      withoutToken: await post({ comment: "forged" }),
    };
  }, `/requests/${id}/approve`);
  assert.equal(forged.withToken.status, 403);
  assert.match(forged.withToken.text, /not a member of the approver group/);
  assert.equal(forged.withoutToken.status, 403);
  assert.match(forged.withoutToken.text, /security token is missing or wrong/);

  // With a valid session and CSRF token but another site's Origin.
  const csrf = await page.locator('input[name="csrf"]').first().inputValue();
  const foreign = await eve.context.request.post(`/requests/${id}/approve`, {
    form: { csrf, comment: "forged" },
    headers: { Origin: "http://evil.example" },
    maxRedirects: 0,
  });
  assert.equal(foreign.status(), 403);
  assert.match(await foreign.text(), /sent from another site/);

  await ada.page.goto(`/requests/${id}`);
  assert.equal(await statusOf(ada.page), "pending", "nothing changed");
  assert.equal(await ada.page.locator("ol.history li").count(), 0);
});

test("an auditor searches the audit log; records link to their traces", async () => {
  const page = eve.page;
  await page.getByRole("link", { name: "Audit", exact: true }).click();
  await page.getByLabel("Request id").fill(ids.move);
  await page.getByRole("button", { name: "Search" }).click();
  const events = await page.locator("table.audit tbody tr td:nth-child(2)").allTextContents();
  for (const e of ["request.submitted", "request.approved", "request.revoked"]) {
    assert.ok(events.includes(e), `${e} in ${events}`);
  }
  const links = page.locator("a[data-trace]");
  assert.ok((await links.count()) >= 3);
  const traceID = await links.first().getAttribute("data-trace");
  assert.match(traceID, /^[0-9a-f]{32}$/);
  assert.equal(await links.first().getAttribute("href"), traceTemplate.replace("{trace_id}", traceID));
  await shot(page, "audit.png");
});

test("on a narrow screen the inbox needs no sideways scrolling", async () => {
  await bob.page.goto("/requests");
  await bob.page.getByLabel("What you need").selectOption(`task:${searchTask}`);
  await bob.page.getByLabel("Reason").fill("search again, case 88");
  await bob.page.getByRole("button", { name: "Submit request" }).click();
  await bob.page.waitForURL(/\/requests\/req-/);
  const narrow = await signIn("ada", { width: 390, height: 844 });
  const page = narrow.page;
  assert.ok((await page.locator("tr[data-request]").count()) >= 2);
  const fits = await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
  assert.ok(fits, "the page is wider than the screen");
  await shot(page, "inbox-narrow.png");
  await narrow.context.close();
});

test("an approvals count of 0 is refused with a message; left empty it is the default", async () => {
  const page = ada.page;
  await page.goto("/policies");
  const before = await page.locator("tr[data-policy]").count();
  await page.getByLabel("Target").fill(removeTask);
  await page.getByLabel("Approvals needed").fill("0");
  await page.getByRole("button", { name: "Create policy" }).click();
  await page.getByRole("alert").waitFor();
  assert.match(await page.getByRole("alert").textContent(), /approvals: must be at least 1/);
  assert.equal(await page.getByLabel("Approvals needed").inputValue(), "0", "the form keeps what was typed");
  assert.equal(await page.getByLabel("Target").inputValue(), removeTask);
  assert.equal(await page.locator("tr[data-policy]").count(), before, "nothing was created");

  await page.getByLabel("Approvals needed").fill("");
  await page.getByRole("button", { name: "Create policy" }).click();
  assert.equal(await flash(page), `Policy created for ${removeTask}.`);
  const row = page.locator("tr[data-policy]", { hasText: removeTask });
  assert.equal((await row.locator('td[data-label="Approvals"]').textContent()).trim(), "1");
});

test("a 2000-character word wraps in every table and on the request page", async () => {
  const long = "https://tickets.example.com/" + "x".repeat(2000 - 28);
  assert.equal(long.length, 2000);
  await bob.page.goto("/requests");
  await bob.page.getByLabel("What you need").selectOption(`task:${removeTask}`);
  await bob.page.getByLabel("Reason").fill(long);
  await bob.page.getByRole("button", { name: "Submit request" }).click();
  await bob.page.waitForURL(/\/requests\/req-/);
  ids.long = bob.page.url().split("/").pop();
  assert.deepEqual(await fitsWidth(bob.page), { 1280: true, 390: true }, "request page");
  await bob.page.goto("/requests");
  assert.deepEqual(await fitsWidth(bob.page), { 1280: true, 390: true }, "my requests");

  const page = ada.page;
  await page.goto("/");
  assert.equal(await page.locator(`tr[data-request="${ids.long}"]`).count(), 1);
  assert.deepEqual(await fitsWidth(page), { 1280: true, 390: true }, "inbox");
  await shot(page, "inbox-long-reason.png");
  await page.goto(`/requests/${ids.long}`);
  await page.getByLabel("Comment").fill(long);
  await page.getByRole("button", { name: "Deny" }).click();
  assert.equal(await flash(page), "Request denied.");
  assert.deepEqual(await fitsWidth(page), { 1280: true, 390: true }, "request page with a long comment");

  await eve.page.goto(`/audit?request=${ids.long}`);
  assert.ok((await eve.page.locator("table.audit tbody tr").count()) >= 2);
  assert.deepEqual(await fitsWidth(eve.page), { 1280: true, 390: true }, "audit");
  await shot(eve.page, "audit-long-reason.png");
});

test("a decision from a stale page is refused; the page shows the request as it is now, with empty forms", async () => {
  const page = ada.page;
  await page.goto(`/requests/${ids.second}`);
  assert.equal(await statusOf(page), "pending");
  // Meanwhile another approver approves it.
  const res = await fetch(`${control}/v1/requests/${ids.second}/approve`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token("cyd", "approvers")}`, "Content-Type": "application/json" },
    body: JSON.stringify({ comment: "approved from the CLI" }),
  });
  assert.equal(res.status, 200, await res.text());

  await page.getByLabel("Comment").fill("typed for deny");
  await page.getByRole("button", { name: "Deny" }).click();
  await page.waitForURL(/\/deny$/);
  assert.equal(await statusOf(page), "approved", "the request as it is now");
  assert.match(await page.getByRole("alert").textContent(), /not recorded[\s\S]*changed/);
  assert.match(await page.locator("ol.history").textContent(), /Approved by cyd/);
  assert.equal(await page.getByRole("button", { name: "Deny" }).count(), 0);
  assert.equal(await page.getByRole("button", { name: "Revoke grant" }).count(), 1);
  assert.deepEqual(await textareas(page), [""], "no comment carried into another form");
  await shot(page, "conflict.png");
});

test("the navigation marks the inbox on someone else's request and My requests on one's own", async () => {
  const current = (page) => page.locator('nav a[aria-current="page"]').textContent();
  await ada.page.goto(`/requests/${ids.second}`);
  assert.equal(await current(ada.page), "Inbox");
  await bob.page.goto(`/requests/${ids.second}`);
  assert.equal(await current(bob.page), "My requests");
});

test("the console has a favicon that the CSP allows", async () => {
  const page = ada.page;
  await page.goto("/");
  const icon = await page.evaluate(async () => {
    const link = document.querySelector('link[rel="icon"]');
    const loaded = await new Promise((resolve) => {
      const img = new Image();
      img.onload = () => resolve(true);
      img.onerror = () => resolve(false);
      img.src = link.href;
    });
    const res = await fetch("/favicon.ico");
    return { loaded, status: res.status, type: res.headers.get("Content-Type") };
  });
  assert.deepEqual(icon, { loaded: true, status: 200, type: "image/svg+xml" });
});

test("signing out ends the session", async () => {
  const page = bob.page;
  await page.goto("/");
  await page.getByRole("button", { name: "Sign out" }).click();
  assert.equal(await flash(page), "You have signed out.");
  await page.goto("/requests");
  await page.waitForURL(/\/dev\/oidc\/authorize/);
  for (const p of [ada, bob, eve]) await p.context.close();
});

test("no page wrote an error to the browser console", () => {
  const unexpected = consoleErrors.filter((e) => !expectedFailures.has(e.url));
  assert.deepEqual(unexpected, []);
});
