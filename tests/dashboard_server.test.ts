/**
 * `kme ui` as a real server on 127.0.0.1 over the report fixture store: the pages and the API
 * answer from the store, the comparison carries its intervals, and the server is read-only and
 * refuses what a local web server must refuse (path traversal, writes, foreign Host headers).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { buildFixtureStore } from "./fixtures/report/fixture.ts";
import { startUi } from "./helpers/dashboard.ts";

/** Every file under `dir` with its size and mtime: what a read-only server must not change. */
async function snapshot(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const p = join(d, e.name);
      if (e.isDirectory) await walk(p);
      else {
        const st = await Deno.stat(p);
        out.push(`${p} ${st.size} ${st.mtime?.getTime()}`);
      }
    }
  };
  await walk(dir);
  return out.sort();
}

/** One raw HTTP/1.1 request, so that the Host header is what the test says. */
async function rawGet(url: string, host: string): Promise<string> {
  const u = new URL(url);
  const conn = await Deno.connect({ hostname: u.hostname, port: Number(u.port) });
  try {
    await conn.write(
      new TextEncoder().encode(`GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`),
    );
    return await new Response(conn.readable).text();
  } catch (e) {
    conn.close();
    throw e;
  }
}

Deno.test({
  name: "kme ui: runs, run page with intervals, report; read-only and traversal-safe",
  sanitizeResources: false,
  fn: async () => {
    const tmp = await Deno.makeTempDir({ prefix: "kme-ui-" });
    const secret = "TOP-SECRET-OUTSIDE-THE-STORE";
    await Deno.writeTextFile(join(tmp, "secret.txt"), secret);
    const fx = await buildFixtureStore(join(tmp, "store"), 600);
    const before = await snapshot(fx.root);
    const ui = await startUi(fx.root, tmp);
    try {
      assert.match(ui.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
      const get = (path: string, init?: RequestInit) => fetch(new URL(path, ui.url), init);

      // The runs page lists both runs, newest first, with a link to each.
      const home = await get("/");
      assert.equal(home.status, 200);
      assert.match(home.headers.get("content-security-policy")!, /default-src 'none'/);
      const page = await home.text();
      const links = [...page.matchAll(/href="\/run\/([^"]+)"/g)].map((m) => m[1]);
      assert.deepEqual(links, [`synthetic-fx/${fx.b.id}`, `synthetic-fx/${fx.a.id}`]);
      assert.match(page, /No stage is training/);
      const runs = await (await get("/api/runs")).json();
      assert.deepEqual(runs.map((r: { id: string }) => r.id), [fx.b.id, fx.a.id]);

      // A run's page: KME-CLIP - CLIP by default, each metric with its seed-level interval.
      const run = await (await get(`/run/synthetic-fx/${fx.a.id}`)).text();
      assert.match(run, /similarity: kme − clip/);
      const rows = [
        ...run.matchAll(/<tr( class="sig")?><td><code>([^<]+)<\/code>.*?<td class="ci">([^<]*)</g),
      ];
      assert.ok(rows.length >= 5, `${rows.length} comparison rows`);
      const rsum = rows.find((r) => r[2] === "retrieval.rsum");
      assert.ok(rsum, "retrieval.rsum compared");
      assert.match(rsum[3], /95% CI \[-?[\d.]+, -?[\d.]+\].*n=3/);
      assert.match(run, /id="fig-comparison"><svg/);
      assert.match(run, /id="fig-training-loss"/);
      assert.match(run, /id="fig-training-val-loss"/);
      // Another pair, chosen in the URL; an axis value the run lacks gives no table.
      const other = await (await get(`/run/synthetic-fx/${fx.a.id}?by=similarity&a=kme&b=clip`))
        .text();
      assert.match(other, /similarity: clip − kme/);
      const none = await (await get(`/run/synthetic-fx/${fx.a.id}?by=similarity&a=x&b=clip`))
        .text();
      assert.doesNotMatch(none, /id="comparison"/);

      // The full report, as `kme report` writes it, with its own no-script policy.
      const rep = await get(`/run/synthetic-fx/${fx.a.id}/report`);
      assert.equal(rep.status, 200);
      assert.match(rep.headers.get("content-security-policy")!, /^default-src 'none'; style-src/);
      assert.match(await rep.text(), /kme-clip report: synthetic-fx/);

      // A stage's log by its key.
      const key = fx.a.stages["train[similarity=kme,seed=0]"].key!;
      const log = await get(`/log/${key}`);
      assert.equal(log.status, 200);
      assert.equal(log.headers.get("content-type"), "text/plain; charset=utf-8");
      await log.body?.cancel();
      // The 12-digit prefix the pages show redirects to the full key.
      const short = await get(`/log/${key.slice(0, 12)}`, { redirect: "manual" });
      assert.equal(short.status, 302);
      assert.equal(short.headers.get("location"), `/log/${key}`);
      await short.body?.cancel();
      const curve = await (await get(`/api/curve/${key}`)).json();
      assert.equal(curve.published, true);
      assert.equal(curve.points, 60);

      // Traversal, in every spelling: 404, and never the file's content.
      for (
        const p of [
          "/log/..%2F..%2Fsecret.txt",
          "/log/../../secret.txt",
          "/attempt/%2e%2e%2f%2e%2e%2fsecret.txt",
          "/api/curve/..%2f..%2fsecret.txt",
          "/run/..%2F..%2F/secret.txt",
          `/run/synthetic-fx/..%2F..%2F..%2Fsecret.txt`,
          `/run/synthetic-fx/${fx.a.id}%2F..%2F..%2F..%2Fsecret.txt`,
          "/run/..%2F..%2Fsecret.txt/x/report",
          "/%2e%2e/%2e%2e/secret.txt",
          "/..%5C..%5Csecret.txt",
          `/log/${"0".repeat(64)}`,
          `/log/${key.toUpperCase()}`,
          `/log/${key}%00`,
          "/style.css/..%2F..%2Fsecret.txt",
        ]
      ) {
        const r = await get(p);
        const body = await r.text();
        assert.equal(r.status, 404, p);
        assert.ok(!body.includes(secret), `${p} leaked the file`);
      }
      assert.equal((await get("/run/%E0%A4%A")).status, 400);
      (await get("/run/%E0%A4%A")).body?.cancel();

      // Read-only: no method but GET and HEAD.
      for (const method of ["POST", "PUT", "DELETE", "PATCH"]) {
        const r = await get("/", { method, body: method === "DELETE" ? undefined : "x" });
        assert.equal(r.status, 405, method);
        await r.body?.cancel();
      }
      // A request naming another host (DNS rebinding) is refused; its own address is not.
      assert.match(await rawGet(ui.url, "attacker.example"), /^HTTP\/1\.1 403/);
      assert.match(await rawGet(ui.url, new URL(ui.url).host), /^HTTP\/1\.1 200/);
    } finally {
      await ui.stop();
    }
    const status = await ui.child.status;
    assert.equal(status.code, 0, "Ctrl-C stops kme ui cleanly");
    // Nothing in the store changed.
    assert.deepEqual(await snapshot(fx.root), before);
    await Deno.remove(tmp, { recursive: true });
  },
});
