-- lmstream: the answers lighttpd makes itself, rewritten as lmstream would
-- make them (mod_magnet, run at the start of every response: see
-- magnet.attract-response-start-to in common.conf).
--
--  * 500, 502, 503 or 504 of lighttpd's own (a FastCGI worker, CGI process
--    or lmstream-live that is gone, was killed mid-request or is being
--    restarted): 503 with Retry-After and a one-line text body, like
--    lmstream's own 503, in place of an HTML page;
--  * 501 for a method lighttpd does not know, and its own 405: 405 with the
--    Allow header lmstream sends, and a one-line text body;
--  * its own 411 (a request body without Content-Length that it will not
--    hand to the backend, as a POST over HTTP/2 with deploy/run --tls): the
--    same status, with a one-line text body saying what to send.
--
-- An answer from lmstream itself (it carries X-Lmstream-Front) and every
-- other status pass unchanged.

local r = lighty.r
local status = r.req_item.http_status

if r.resp_header["X-Lmstream-Front"] then
  return 0
end

local function answer(code, text)
  r.resp_header["Content-Type"] = "text/plain; charset=utf-8"
  r.resp_header["Cache-Control"] = "no-store"
  r.resp_body.set({ text })
  return code
end

if status == 500 or status == 502 or status == 503 or status == 504 then
  -- about the time lighttpd takes to restart a worker, or deploy/run (or
  -- systemd) to restart lmstream-live
  r.resp_header["Retry-After"] = "1"
  return answer(503, "service unavailable: the lmstream backend is restarting, try again\n")
end

-- lighttpd answers 501 to a method it does not know before it even reads
-- the path; request.method is then empty.
if status == 405 or (status == 501 and r.req_attr["request.method"] == "") then
  r.resp_header["Allow"] = "GET, HEAD, POST, PUT, DELETE, OPTIONS"
  return answer(405, "method not allowed\n")
end

if status == 411 then
  return answer(411, "length required: send the request body with its Content-Length\n")
end

return 0
