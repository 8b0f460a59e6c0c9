/* subs.c: lmstreamctl deliver and webhook-key (subscriptions, core/subs.h). */
#include "core/subs.h"
#include "front/ctl/ctl.h"
#include "front/deliver.h"
#include "front/notify.h"
#include "lib/num.h"

#include <stdlib.h>
#include <string.h>

static void woke(void *arg, uint64_t stream_id, uint64_t txnid)
{
	(void)arg;
	notify_send(stream_id, txnid);
}

/* lmstreamctl deliver [--for SECONDS]: what is due now (from cron on
 * shared hosting, where no lmstream-live runs). */
int cmd_deliver(struct ctl *c, int argc, char **argv)
{
	const char *secs = NULL;
	const struct ctl_opt opts[] = { { "--for", NULL, &secs }, { NULL, NULL, NULL } };
	uint64_t s = 50;
	if (ctl_args("deliver", argc, argv, opts, NULL, NULL))
		return CTL_USAGE;
	if (secs && (num_decimal(secs, strlen(secs), 5, &s) || !s))
		return ctl_fail("deliver: --for takes a number of seconds");
	int64_t next = 0;
	int n = deliver_run(c->st, &c->cfg, (int64_t)s * 1000, woke, NULL, &next);
	if (n < 0)
		return ctl_fail("deliver: the store failed (see the line above)");
	printf("%d webhook(s) sent", n);
	if (next) {
		char when[32];
		ctl_time(when, next);
		printf("; next due %s", when);
	}
	printf("\n");
	return CTL_OK;
}

/* lmstreamctl webhook-key rotate */
int cmd_webhook_key(struct ctl *c, int argc, char **argv)
{
	const char *what = NULL;
	char kid[48];
	if (ctl_args("webhook-key", argc, argv, NULL, &what, "rotate"))
		return CTL_USAGE;
	if (strcmp(what, "rotate"))
		return ctl_fail("webhook-key: %s: unknown (only rotate)", what);
	if (subs_key_rotate(c->st, kid) != ST_OK)
		return ctl_fail("webhook-key: cannot rotate the key (see the line above)");
	printf("%s\n", kid);
	return CTL_OK;
}
