// Serves the built Cinny the way its README asks: files as they are, index.html for client-side
// routes, the root olm.wasm wherever the client looks for it, and our own config.json.
import { createServer } from "node:http";
import { readFile, stat } from "node:fs/promises";
import { extname, join, normalize, sep } from "node:path";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".map": "application/json",
  ".wasm": "application/wasm",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".ttf": "font/ttf",
  ".ogg": "audio/ogg",
  ".webmanifest": "application/manifest+json",
};

export function cinnyConfig(homeserverUrl) {
  return {
    defaultHomeserver: 0,
    homeserverList: [homeserverUrl],
    allowCustomHomeservers: true,
    featuredCommunities: { openAsDefault: false, spaces: [], rooms: [], servers: [] },
    hashRouter: { enabled: false, basename: "/" },
  };
}

async function isFile(path) {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Starts the server on an ephemeral loopback port; resolves to { url, close }. */
export async function serveCinny(dir, homeserverUrl) {
  const root = normalize(dir);
  const config = JSON.stringify(cinnyConfig(homeserverUrl));

  const server = createServer(async (req, res) => {
    try {
      const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
      let file;
      if (path === "/config.json") {
        res.writeHead(200, { "Content-Type": TYPES[".json"], "Cache-Control": "no-store" });
        res.end(config);
        return;
      }
      if (path.endsWith("/olm.wasm")) {
        file = join(root, "olm.wasm");
      } else {
        file = normalize(join(root, path));
        // A path with ".." must not leave the client's directory.
        if (file !== root && !file.startsWith(root + sep)) file = null;
        if (file && !(await isFile(file))) file = null;
      }
      file ??= join(root, "index.html");
      const body = await readFile(file);
      res.writeHead(200, {
        "Content-Type": TYPES[extname(file)] ?? "application/octet-stream",
        "Cache-Control": "no-store",
      });
      res.end(body);
    } catch (err) {
      res.writeHead(500, { "Content-Type": "text/plain" });
      res.end(String(err));
    }
  });

  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.close(resolve);
        server.closeAllConnections();
      }),
  };
}
