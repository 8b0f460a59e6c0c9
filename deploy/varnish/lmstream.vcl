vcl 4.1;
# deploy/varnish/lmstream.vcl: Varnish in front of lmstream (HAProxy of a
# cluster, or one node), as deploy/run --server cluster starts it. What it
# does, and how to put a CDN in its place: README, "Several machines".
#
#   - catch-up reads (GET ?offset=X, X not "now") are cached as lmstream's
#     Cache-Control says: the data at an offset never changes;
#   - long-polls (?live=long-poll) with the same offset and cursor are one
#     request to the origin (Varnish's waiting list), and a long-poll's 204
#     (its timeout) is kept 1 s, so the waiters are not all released to the
#     origin at once;
#   - SSE (?live=sse), writes and everything with a credential pass, never
#     cached: a token, a cookie or the web server's login makes a read
#     private (one user's read is never served to another);
#   - PUT and DELETE ban what is cached of the stream's path (a stream
#     deleted and made again starts at offset 0 with other data); an
#     append bans the stream's cached reads that reached its tail then
#     (Stream-Up-To-Date), which it made short, and keeps the others: the
#     data at an offset never changes, so a reader still catches up from
#     the cache, and a writer reads its own write;
#   - Varnish's own failures answer 503 with Retry-After and one line.
#
# The backend is given by variables substituted when the file is rendered:
# LMSTREAM_ORIGIN_HOST and LMSTREAM_ORIGIN_PORT, and LMSTREAM_LIVE_TIMEOUT
# (seconds: longer than long_poll_timeout and than the SSE heartbeat).
#
# Every ban tests obj.http.* only, so Varnish's ban lurker retires them in
# the background instead of each lookup testing them.

import std;

backend origin {
	.host = "${LMSTREAM_ORIGIN_HOST}";
	.port = "${LMSTREAM_ORIGIN_PORT}";
	.connect_timeout = 2s;
	# a long-poll waits up to long_poll_timeout for data
	.first_byte_timeout = ${LMSTREAM_LIVE_TIMEOUT}s;
	# an SSE response sends a heartbeat every few seconds
	.between_bytes_timeout = ${LMSTREAM_LIVE_TIMEOUT}s;
}

sub vcl_recv {
	if (req.method == "PUT" || req.method == "DELETE") {
		# what was cached of this stream was another stream's
		ban("obj.http.x-lmstream-path == " + regsub(req.url, "\?.*$", ""));
		return (pass);
	}
	if (req.method != "GET" && req.method != "HEAD") {
		return (pass);
	}
	if (req.http.Authorization || req.http.Cookie || req.url ~ "[?&]token=") {
		return (pass);
	}
	if (req.url ~ "[?&]live=sse" || req.url ~ "[?&]offset=now") {
		return (pass);
	}
	if (req.url !~ "[?&]offset=") {
		# HEAD and reads without an offset: the tail, which moves
		return (pass);
	}
	return (hash);
}

sub vcl_backend_response {
	if (bereq.method == "POST" && beresp.status < 300 && bereq.url !~ "/__ds/") {
		# committed: the reads that reached the old tail are short now (a
		# read that got its answer from the origin before this commit and
		# into the cache after this line may stay until it expires, as the
		# protocol allows: a client reads on from Stream-Next-Offset)
		ban("obj.http.x-lmstream-path == " + regsub(bereq.url, "\?.*$", "") +
		    " && obj.http.x-lmstream-tail == 1");
	}
	if (bereq.method == "PUT" || bereq.method == "DELETE") {
		ban("obj.http.x-lmstream-path == " + regsub(bereq.url, "\?.*$", ""));
	}
	set beresp.http.x-lmstream-path = regsub(bereq.url, "\?.*$", "");
	if (beresp.http.Stream-Up-To-Date) {
		# the tail: never served past its max-age (no grace)
		set beresp.http.x-lmstream-tail = "1";
		set beresp.grace = 0s;
	}
	if (bereq.url ~ "[?&]live=long-poll" && beresp.status == 204) {
		# the long-poll's timeout: kept 1 s for the waiters of this cursor
		unset beresp.http.Cache-Control;
		set beresp.ttl = 1s;
		set beresp.grace = 0s;
		return (deliver);
	}
	if (beresp.status >= 500) {
		set beresp.uncacheable = true;
		set beresp.ttl = 0s;
		return (deliver);
	}
}

sub vcl_deliver {
	unset resp.http.x-lmstream-path;
	unset resp.http.x-lmstream-tail;
	if (obj.hits > 0) {
		set resp.http.X-Cache = "hit";
	} else {
		set resp.http.X-Cache = "miss";
	}
}

sub vcl_backend_error {
	set beresp.http.Content-Type = "text/plain; charset=utf-8";
	set beresp.http.Retry-After = "1";
	set beresp.status = 503;
	synthetic("the stream's node did not answer; try again" + {"
"});
	return (deliver);
}

sub vcl_synth {
	if (resp.status >= 500) {
		set resp.http.Content-Type = "text/plain; charset=utf-8";
		set resp.http.Retry-After = "1";
		synthetic("service unavailable; try again" + {"
"});
		return (deliver);
	}
}
