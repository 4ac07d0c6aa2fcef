/*
 * scram_auth.c - a mosquitto 2.0 plugin (plugin API version 5) doing MQTT 5 enhanced
 * authentication (MQTT 5.0 section 4.12) with SCRAM-SHA-256 (RFC 5802, RFC 7677).
 *
 * Test support for mqtt-sync: tests/support/auth_plugin.rs compiles it at test time with
 *
 *     cc -shared -fPIC -O2 -Wall -Wextra -o scram_auth.so scram_auth.c -lcrypto
 *
 * (headers from the Debian packages mosquitto-dev, libmosquitto-dev and libssl-dev) and
 * loads it into a mosquitto 2.0.x started by the tests.
 *
 * Exchange (authentication method "SCRAM-SHA-256"; each message is the Authentication
 * Data property of the packet):
 *
 *   CONNECT    client-first-message  "n,,n=<user>,r=<cnonce>"
 *   AUTH 0x18  server-first-message  "r=<cnonce><snonce>,s=<base64 salt>,i=<iterations>"
 *   AUTH 0x18  client-final-message  "c=biws,r=<cnonce><snonce>,p=<base64 ClientProof>"
 *   CONNACK 0  server-final-message  "v=<base64 ServerSignature>"
 *
 * Re-authentication while connected: the client sends AUTH 0x19 carrying a new
 * client-first-message; the rest is the same and ends with AUTH 0x00 carrying the
 * server-final-message. A re-authentication must name the user that authenticated the
 * connection. The plugin tells a first authentication from a re-authentication by
 * remembering, per connection, that one succeeded (the v5 event data carries no flag), and
 * forgets the connection on MOSQ_EVT_DISCONNECT.
 *
 * Options (mosquitto.conf, after the `plugin` line):
 *
 *   plugin_opt_users       alice:secret,bob:pw   users and passwords (required). A
 *                          password runs to the next ',' and may contain ':'. Only the
 *                          derived StoredKey / ServerKey are kept, under a random salt
 *                          per user made at start-up.
 *   plugin_opt_iterations  4096                  PBKDF2 iteration count (1..1000000).
 *   plugin_opt_reauth      allow | deny          deny: every re-authentication is
 *                          refused at its first AUTH (default allow).
 *
 * Outcomes, as return codes to mosquitto (what mosquitto then sends is decided by the
 * broker; tests/auth_plugin_selftest.rs records it):
 *   - another authentication method:        MOSQ_ERR_NOT_SUPPORTED
 *   - malformed message, unknown user, wrong proof, refused re-authentication:
 *                                           MOSQ_ERR_AUTH
 *   - next step:                            MOSQ_ERR_AUTH_CONTINUE, data in data_out
 *   - success:                              MOSQ_ERR_SUCCESS, server-final in data_out
 *
 * Not implemented: SASLprep (names and passwords are compared byte for byte), channel
 * binding ("p=" gs2 flag) and authorization identities ("a=" in the gs2 header); all three
 * are refused. An unknown user gets a server-first-message with a stable made-up salt, so
 * that it fails only at the proof, like a wrong password.
 *
 * mosquitto runs plugin callbacks on its single main thread, so there is no locking.
 * Every length read from the network is checked against a fixed bound before use.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#define METHOD "SCRAM-SHA-256"

#define KEY_LEN SHA256_DIGEST_LENGTH /* 32: HMAC-SHA-256 / SHA-256 output */
#define SALT_LEN 16
#define SNONCE_RAW_LEN 18 /* random bytes of the server nonce: 24 base64 characters */
#define SNONCE_B64_LEN 24
#define MAX_NAME 128   /* longest user name, in bytes after unescaping */
#define MAX_CNONCE 128 /* longest client nonce */
#define MAX_MSG 1024   /* longest client message accepted */
#define MAX_SERVER_FIRST (2 + MAX_CNONCE + SNONCE_B64_LEN + 3 + 24 + 3 + 10)
#define MAX_ITERATIONS 1000000
#define DEFAULT_ITERATIONS 4096

/* base64 length of n bytes, without the terminating NUL */
#define B64_LEN(n) ((((n) + 2) / 3) * 4)

struct user {
	char name[MAX_NAME + 1];
	unsigned char salt[SALT_LEN];
	unsigned char stored_key[KEY_LEN]; /* H(ClientKey) */
	unsigned char server_key[KEY_LEN]; /* HMAC(SaltedPassword, "Server Key") */
};

enum step {
	STEP_IDLE,             /* no handshake under way */
	STEP_SENT_SERVER_FIRST /* waiting for the client-final-message */
};

/* What the plugin knows about one connection (keyed by the broker's client pointer). */
struct session {
	struct session *next;
	const struct mosquitto *client;
	bool authenticated;             /* a handshake succeeded on this connection */
	char authed_user[MAX_NAME + 1]; /* its user, when authenticated */
	/* The handshake under way, when step == STEP_SENT_SERVER_FIRST: */
	enum step step;
	const struct user *user; /* NULL: unknown user name, the proof will fail */
	char name[MAX_NAME + 1];
	char cbind[B64_LEN(3) + 1]; /* expected "c=" value: base64 of the gs2 header */
	char nonce[MAX_CNONCE + SNONCE_B64_LEN + 1];
	/* client-first-message-bare "," server-first-message: the start of AuthMessage */
	char auth_prefix[MAX_MSG + 1 + MAX_SERVER_FIRST + 1];
	size_t auth_prefix_len;
};

struct plugin {
	mosquitto_plugin_id_t *id;
	struct user *users;
	size_t user_count;
	int iterations;
	bool reauth_allowed;
	unsigned char fake_salt_key[KEY_LEN]; /* makes salts for unknown users */
	struct session *sessions;
};

/* ---------------------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------------------- */

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Writes base64 of in[0..len) and a NUL to out, which holds B64_LEN(len) + 1 bytes. */
static void b64_encode(const unsigned char *in, size_t len, char *out)
{
	size_t i, o = 0;
	for(i = 0; i + 2 < len; i += 3){
		uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
		out[o++] = b64_alphabet[(v >> 18) & 63];
		out[o++] = b64_alphabet[(v >> 12) & 63];
		out[o++] = b64_alphabet[(v >> 6) & 63];
		out[o++] = b64_alphabet[v & 63];
	}
	if(i < len){
		uint32_t v = (uint32_t)in[i] << 16;
		if(i + 1 < len) v |= (uint32_t)in[i + 1] << 8;
		out[o++] = b64_alphabet[(v >> 18) & 63];
		out[o++] = b64_alphabet[(v >> 12) & 63];
		out[o++] = (i + 1 < len) ? b64_alphabet[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
}

static int b64_value(char c)
{
	if(c >= 'A' && c <= 'Z') return c - 'A';
	if(c >= 'a' && c <= 'z') return c - 'a' + 26;
	if(c >= '0' && c <= '9') return c - '0' + 52;
	if(c == '+') return 62;
	if(c == '/') return 63;
	return -1;
}

/*
 * Strict base64 decoding of in[0..len) (padded, no whitespace) into out, which holds
 * out_max bytes. Returns the decoded length, or -1 if the input is not base64 or does not
 * fit.
 */
static int b64_decode(const char *in, size_t len, unsigned char *out, size_t out_max)
{
	size_t i, o = 0;
	if(len == 0 || len % 4 != 0) return -1;
	for(i = 0; i < len; i += 4){
		int v[4];
		int pad = 0;
		for(size_t k = 0; k < 4; k++){
			if(in[i + k] == '=' && i + 4 == len && k >= 2){
				v[k] = 0;
				pad++;
			}else{
				if(pad) return -1; /* data after '=' */
				v[k] = b64_value(in[i + k]);
				if(v[k] < 0) return -1;
			}
		}
		uint32_t w = ((uint32_t)v[0] << 18) | ((uint32_t)v[1] << 12)
			| ((uint32_t)v[2] << 6) | (uint32_t)v[3];
		size_t n = 3 - (size_t)pad;
		if(o + n > out_max) return -1;
		out[o++] = (unsigned char)(w >> 16);
		if(n > 1) out[o++] = (unsigned char)(w >> 8);
		if(n > 2) out[o++] = (unsigned char)w;
	}
	return (int)o;
}

static bool hmac_sha256(const unsigned char *key, size_t key_len,
		const void *data, size_t data_len, unsigned char out[KEY_LEN])
{
	unsigned int out_len = 0;
	return HMAC(EVP_sha256(), key, (int)key_len, data, data_len, out, &out_len) != NULL
		&& out_len == KEY_LEN;
}

/* The client id for log lines (never NULL). */
static const char *client_label(const struct mosquitto *client)
{
	const char *id = client ? mosquitto_client_id(client) : NULL;
	return id ? id : "(unknown)";
}

/*
 * Copies the Authentication Data of an event into msg as a NUL-terminated string. Refuses
 * data that is missing, longer than MAX_MSG, or holds a NUL byte.
 */
static bool copy_message(const struct mosquitto_evt_extended_auth *ed, char msg[MAX_MSG + 1])
{
	if(ed->data_in == NULL || ed->data_in_len == 0 || ed->data_in_len > MAX_MSG){
		return false;
	}
	if(memchr(ed->data_in, '\0', ed->data_in_len) != NULL) return false;
	memcpy(msg, ed->data_in, ed->data_in_len);
	msg[ed->data_in_len] = '\0';
	return true;
}

/* Hands len bytes of s to mosquitto as the Authentication Data to send. */
static bool set_data_out(struct mosquitto_evt_extended_auth *ed, const char *s, size_t len)
{
	void *buf;
	if(len > UINT16_MAX) return false;
	buf = mosquitto_malloc(len);
	if(buf == NULL) return false;
	memcpy(buf, s, len);
	ed->data_out = buf;
	ed->data_out_len = (uint16_t)len;
	return true;
}

/* ---------------------------------------------------------------------------------------
 * Sessions
 * ------------------------------------------------------------------------------------- */

static struct session *session_find(struct plugin *p, const struct mosquitto *client)
{
	for(struct session *s = p->sessions; s; s = s->next){
		if(s->client == client) return s;
	}
	return NULL;
}

static struct session *session_new(struct plugin *p, const struct mosquitto *client)
{
	struct session *s = mosquitto_calloc(1, sizeof(*s));
	if(s == NULL) return NULL;
	s->client = client;
	s->next = p->sessions;
	p->sessions = s;
	return s;
}

/* Forgets the handshake under way, keeping whether the connection is authenticated. */
static void session_reset_handshake(struct session *s)
{
	s->step = STEP_IDLE;
	s->user = NULL;
	OPENSSL_cleanse(s->name, sizeof(s->name));
	OPENSSL_cleanse(s->nonce, sizeof(s->nonce));
	OPENSSL_cleanse(s->auth_prefix, sizeof(s->auth_prefix));
	s->cbind[0] = '\0';
	s->auth_prefix_len = 0;
}

static void session_remove(struct plugin *p, const struct mosquitto *client)
{
	for(struct session **link = &p->sessions; *link; link = &(*link)->next){
		struct session *s = *link;
		if(s->client == client){
			*link = s->next;
			OPENSSL_cleanse(s, sizeof(*s));
			mosquitto_free(s);
			return;
		}
	}
}

/* A failed handshake: a connection that never authenticated is forgotten (mosquitto
 * closes it); an authenticated one keeps its state until MOSQ_EVT_DISCONNECT. */
static void session_fail(struct plugin *p, struct session *s)
{
	if(s->authenticated){
		session_reset_handshake(s);
	}else{
		session_remove(p, s->client);
	}
}

/* ---------------------------------------------------------------------------------------
 * SCRAM messages
 * ------------------------------------------------------------------------------------- */

static const struct user *find_user(const struct plugin *p, const char *name)
{
	for(size_t i = 0; i < p->user_count; i++){
		if(strcmp(p->users[i].name, name) == 0) return &p->users[i];
	}
	return NULL;
}

/*
 * Decodes a saslname (RFC 5802: ',' is sent as "=2C" and '=' as "=3D") of in[0..len)
 * into out (MAX_NAME + 1 bytes). Returns false if malformed or too long.
 */
static bool unescape_saslname(const char *in, size_t len, char out[MAX_NAME + 1])
{
	size_t o = 0;
	if(len == 0) return false;
	for(size_t i = 0; i < len; i++){
		char c = in[i];
		if(c == '='){
			if(len - i < 3) return false;
			if(in[i + 1] == '2' && in[i + 2] == 'C'){
				c = ',';
			}else if(in[i + 1] == '3' && in[i + 2] == 'D'){
				c = '=';
			}else{
				return false;
			}
			i += 2;
		}
		if(o >= MAX_NAME) return false;
		out[o++] = c;
	}
	out[o] = '\0';
	return true;
}

/* A nonce is 1..max printable ASCII characters other than ','. */
static bool valid_nonce(const char *s, size_t len, size_t max)
{
	if(len == 0 || len > max) return false;
	for(size_t i = 0; i < len; i++){
		if(s[i] < 0x21 || s[i] > 0x7e || s[i] == ',') return false;
	}
	return true;
}

/* The salt of a user that does not exist: HMAC(fake_salt_key, name), stable per run. */
static bool fake_salt(const struct plugin *p, const char *name, unsigned char salt[SALT_LEN])
{
	unsigned char mac[KEY_LEN];
	if(!hmac_sha256(p->fake_salt_key, KEY_LEN, name, strlen(name), mac)) return false;
	memcpy(salt, mac, SALT_LEN);
	return true;
}

/*
 * Handles a client-first-message (NUL-terminated msg): fills the handshake fields of s
 * and writes the server-first-message into out (MAX_SERVER_FIRST + 1 bytes). Returns
 * false (with a reason in *why) if the message is refused.
 */
static bool handle_client_first(struct plugin *p, struct session *s, const char *msg,
		char out[MAX_SERVER_FIRST + 1], const char **why)
{
	const char *bare, *name_start, *name_end, *nonce_start, *nonce_end;
	unsigned char salt[SALT_LEN];
	unsigned char snonce_raw[SNONCE_RAW_LEN];
	char snonce[SNONCE_B64_LEN + 1];
	char salt_b64[B64_LEN(SALT_LEN) + 1];
	int n;

	/* gs2-header: "n,," (no channel binding) or "y,," (client could, thinks we cannot). */
	if(strncmp(msg, "n,,", 3) == 0){
		b64_encode((const unsigned char *)"n,,", 3, s->cbind);
	}else if(strncmp(msg, "y,,", 3) == 0){
		b64_encode((const unsigned char *)"y,,", 3, s->cbind);
	}else{
		*why = "unsupported gs2 header (channel binding or authzid)";
		return false;
	}
	bare = msg + 3;

	/* client-first-message-bare: "n=" saslname ",r=" c-nonce ["," extensions] */
	if(strncmp(bare, "n=", 2) != 0){
		*why = strncmp(bare, "m=", 2) == 0 ? "mandatory extension" : "no user name";
		return false;
	}
	name_start = bare + 2;
	name_end = strchr(name_start, ',');
	if(name_end == NULL || strncmp(name_end, ",r=", 3) != 0){
		*why = "no nonce";
		return false;
	}
	if(!unescape_saslname(name_start, (size_t)(name_end - name_start), s->name)){
		*why = "bad user name";
		return false;
	}
	nonce_start = name_end + 3;
	nonce_end = strchr(nonce_start, ',');
	if(nonce_end == NULL) nonce_end = nonce_start + strlen(nonce_start);
	if(!valid_nonce(nonce_start, (size_t)(nonce_end - nonce_start), MAX_CNONCE)){
		*why = "bad client nonce";
		return false;
	}

	s->user = find_user(p, s->name);
	if(s->user){
		memcpy(salt, s->user->salt, SALT_LEN);
	}else if(!fake_salt(p, s->name, salt)){
		*why = "HMAC failed";
		return false;
	}

	if(RAND_bytes(snonce_raw, sizeof(snonce_raw)) != 1){
		*why = "RAND_bytes failed";
		return false;
	}
	b64_encode(snonce_raw, sizeof(snonce_raw), snonce);
	b64_encode(salt, SALT_LEN, salt_b64);

	n = snprintf(s->nonce, sizeof(s->nonce), "%.*s%s",
			(int)(nonce_end - nonce_start), nonce_start, snonce);
	if(n < 0 || (size_t)n >= sizeof(s->nonce)){
		*why = "nonce too long";
		return false;
	}
	n = snprintf(out, MAX_SERVER_FIRST + 1, "r=%s,s=%s,i=%d", s->nonce, salt_b64,
			p->iterations);
	if(n < 0 || n > MAX_SERVER_FIRST){
		*why = "server-first-message too long";
		return false;
	}
	n = snprintf(s->auth_prefix, sizeof(s->auth_prefix), "%s,%s", bare, out);
	if(n < 0 || (size_t)n >= sizeof(s->auth_prefix)){
		*why = "message too long";
		return false;
	}
	s->auth_prefix_len = (size_t)n;
	s->step = STEP_SENT_SERVER_FIRST;
	return true;
}

/*
 * Handles a client-final-message (NUL-terminated msg): checks the channel binding, the
 * nonce and the proof, and on success writes the server-final-message into out
 * (3 + B64_LEN(KEY_LEN) bytes). Returns false (with a reason in *why) if refused.
 */
static bool handle_client_final(struct session *s, const char *msg,
		char out[2 + B64_LEN(KEY_LEN) + 1], const char **why)
{
	const char *proof_attr, *c_end, *r_start, *r_end, *without_proof_end;
	unsigned char proof[KEY_LEN], client_sig[KEY_LEN], client_key[KEY_LEN];
	unsigned char stored_key[KEY_LEN], server_sig[KEY_LEN];
	char auth_message[sizeof(s->auth_prefix) + 1 + MAX_MSG + 1];
	size_t without_proof_len, proof_len;
	int n;
	bool ok;

	/* client-final-message-without-proof ",p=" proof; the proof is the last attribute. */
	proof_attr = NULL;
	for(const char *c = msg; (c = strstr(c, ",p=")) != NULL; c++) proof_attr = c;
	if(proof_attr == NULL){
		*why = "no proof";
		return false;
	}
	without_proof_end = proof_attr;
	without_proof_len = (size_t)(without_proof_end - msg);

	/* "c=" channel binding: must repeat our gs2 header */
	if(strncmp(msg, "c=", 2) != 0){
		*why = "no channel binding attribute";
		return false;
	}
	c_end = strchr(msg, ',');
	if(c_end == NULL || c_end > without_proof_end
			|| (size_t)(c_end - msg - 2) != strlen(s->cbind)
			|| strncmp(msg + 2, s->cbind, strlen(s->cbind)) != 0){
		*why = "channel binding mismatch";
		return false;
	}
	/* ",r=" nonce: must be the combined nonce of the server-first-message */
	if(strncmp(c_end, ",r=", 3) != 0){
		*why = "no nonce";
		return false;
	}
	r_start = c_end + 3;
	r_end = strchr(r_start, ',');
	if(r_end == NULL || r_end > without_proof_end) r_end = without_proof_end;
	if((size_t)(r_end - r_start) != strlen(s->nonce)
			|| strncmp(r_start, s->nonce, strlen(s->nonce)) != 0){
		*why = "nonce mismatch";
		return false;
	}

	proof_len = strlen(proof_attr + 3);
	if(b64_decode(proof_attr + 3, proof_len, proof, sizeof(proof)) != KEY_LEN){
		*why = "malformed proof";
		return false;
	}

	if(s->user == NULL){
		*why = "unknown user";
		return false;
	}

	/* AuthMessage = client-first-message-bare "," server-first-message ","
	 *               client-final-message-without-proof */
	n = snprintf(auth_message, sizeof(auth_message), "%s,%.*s", s->auth_prefix,
			(int)without_proof_len, msg);
	if(n < 0 || (size_t)n >= sizeof(auth_message)){
		*why = "message too long";
		return false;
	}

	/* ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); check H(ClientKey). */
	if(!hmac_sha256(s->user->stored_key, KEY_LEN, auth_message, (size_t)n, client_sig)){
		*why = "HMAC failed";
		return false;
	}
	for(size_t i = 0; i < KEY_LEN; i++) client_key[i] = proof[i] ^ client_sig[i];
	SHA256(client_key, KEY_LEN, stored_key);
	ok = CRYPTO_memcmp(stored_key, s->user->stored_key, KEY_LEN) == 0;
	OPENSSL_cleanse(client_key, sizeof(client_key));
	if(!ok){
		*why = "wrong proof";
		return false;
	}

	if(!hmac_sha256(s->user->server_key, KEY_LEN, auth_message, (size_t)n, server_sig)){
		*why = "HMAC failed";
		return false;
	}
	memcpy(out, "v=", 2);
	b64_encode(server_sig, KEY_LEN, out + 2);
	return true;
}

/* ---------------------------------------------------------------------------------------
 * Event callbacks
 * ------------------------------------------------------------------------------------- */

static int on_ext_auth_start(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_extended_auth *ed = event_data;
	struct plugin *p = userdata;
	struct session *s;
	char msg[MAX_MSG + 1];
	char server_first[MAX_SERVER_FIRST + 1];
	const char *why = NULL;
	bool reauth;

	(void)event;
	if(ed->auth_method == NULL || strcmp(ed->auth_method, METHOD) != 0){
		/* Not ours: the broker answers 0x8C Bad authentication method. */
		return MOSQ_ERR_NOT_SUPPORTED;
	}

	s = session_find(p, ed->client);
	reauth = s != NULL && s->authenticated;
	if(reauth && !p->reauth_allowed){
		mosquitto_log_printf(MOSQ_LOG_NOTICE,
				"scram_auth: re-authentication of %s refused (plugin_opt_reauth deny)",
				client_label(ed->client));
		session_reset_handshake(s);
		return MOSQ_ERR_AUTH;
	}
	if(s == NULL){
		s = session_new(p, ed->client);
		if(s == NULL) return MOSQ_ERR_NOMEM;
	}
	session_reset_handshake(s);

	if(!copy_message(ed, msg)){
		why = "missing, oversized or binary client-first-message";
	}else if(handle_client_first(p, s, msg, server_first, &why)){
		if(reauth && strcmp(s->name, s->authed_user) != 0){
			why = "re-authentication as another user";
		}else if(!set_data_out(ed, server_first, strlen(server_first))){
			session_fail(p, s);
			return MOSQ_ERR_NOMEM;
		}else{
			mosquitto_log_printf(MOSQ_LOG_DEBUG, "scram_auth: %s of %s: server-first sent",
					reauth ? "re-authentication" : "authentication",
					client_label(ed->client));
			return MOSQ_ERR_AUTH_CONTINUE;
		}
	}
	mosquitto_log_printf(MOSQ_LOG_NOTICE, "scram_auth: %s of %s refused: %s",
			reauth ? "re-authentication" : "authentication", client_label(ed->client), why);
	session_fail(p, s);
	return MOSQ_ERR_AUTH;
}

static int on_ext_auth_continue(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_extended_auth *ed = event_data;
	struct plugin *p = userdata;
	struct session *s;
	char msg[MAX_MSG + 1];
	char server_final[2 + B64_LEN(KEY_LEN) + 1];
	const char *why = NULL;

	(void)event;
	/* mosquitto 2.0.11 passes auth_method == NULL to this event (it does set it for
	 * MOSQ_EVT_EXT_AUTH_START): a handshake is ours if our START began it. */
	if(ed->auth_method != NULL && strcmp(ed->auth_method, METHOD) != 0){
		return MOSQ_ERR_NOT_SUPPORTED;
	}
	s = session_find(p, ed->client);
	if(ed->auth_method == NULL && (s == NULL || s->step == STEP_IDLE)){
		return MOSQ_ERR_NOT_SUPPORTED;
	}
	if(s == NULL || s->step != STEP_SENT_SERVER_FIRST){
		mosquitto_log_printf(MOSQ_LOG_NOTICE,
				"scram_auth: unexpected AUTH from %s (no handshake under way)",
				client_label(ed->client));
		if(s) session_fail(p, s);
		return MOSQ_ERR_AUTH;
	}
	if(!copy_message(ed, msg)){
		why = "missing, oversized or binary client-final-message";
	}else if(handle_client_final(s, msg, server_final, &why)){
		bool reauth = s->authenticated;
		if(!set_data_out(ed, server_final, strlen(server_final))){
			session_fail(p, s);
			return MOSQ_ERR_NOMEM;
		}
		/* The broker uses this name for ACLs and in its log. */
		if(mosquitto_set_username(ed->client, s->name) != MOSQ_ERR_SUCCESS){
			mosquitto_log_printf(MOSQ_LOG_WARNING, "scram_auth: cannot set user name of %s",
					client_label(ed->client));
		}
		mosquitto_log_printf(MOSQ_LOG_NOTICE, "scram_auth: %s %s as %s",
				client_label(ed->client),
				reauth ? "re-authenticated" : "authenticated", s->name);
		s->authenticated = true;
		memcpy(s->authed_user, s->name, sizeof(s->authed_user));
		session_reset_handshake(s);
		return MOSQ_ERR_SUCCESS;
	}
	mosquitto_log_printf(MOSQ_LOG_NOTICE, "scram_auth: %s of %s refused: %s",
			s->authenticated ? "re-authentication" : "authentication",
			client_label(ed->client), why);
	session_fail(p, s);
	return MOSQ_ERR_AUTH;
}

static int on_disconnect(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_disconnect *ed = event_data;
	struct plugin *p = userdata;

	(void)event;
	if(session_find(p, ed->client)){
		mosquitto_log_printf(MOSQ_LOG_DEBUG, "scram_auth: forgetting %s",
				client_label(ed->client));
		session_remove(p, ed->client);
	}
	return MOSQ_ERR_SUCCESS;
}

/* ---------------------------------------------------------------------------------------
 * Options and plugin entry points
 * ------------------------------------------------------------------------------------- */

/* Derives the keys of one user (RFC 5802 section 3). */
static bool derive_user(struct user *u, const char *password, size_t password_len,
		int iterations)
{
	unsigned char salted[KEY_LEN], client_key[KEY_LEN];
	bool ok;

	if(RAND_bytes(u->salt, SALT_LEN) != 1) return false;
	ok = PKCS5_PBKDF2_HMAC(password, (int)password_len, u->salt, SALT_LEN, iterations,
				EVP_sha256(), KEY_LEN, salted) == 1
		&& hmac_sha256(salted, KEY_LEN, "Client Key", 10, client_key)
		&& hmac_sha256(salted, KEY_LEN, "Server Key", 10, u->server_key);
	if(ok) SHA256(client_key, KEY_LEN, u->stored_key);
	OPENSSL_cleanse(salted, sizeof(salted));
	OPENSSL_cleanse(client_key, sizeof(client_key));
	return ok;
}

/* Parses "name:password,name:password" into p->users. */
static bool parse_users(struct plugin *p, const char *value)
{
	size_t count = 1;
	const char *entry = value;

	for(const char *c = value; *c; c++){
		if(*c == ',') count++;
	}
	p->users = mosquitto_calloc(count, sizeof(*p->users));
	if(p->users == NULL) return false;

	while(entry){
		const char *end = strchr(entry, ',');
		const char *colon;
		size_t len = end ? (size_t)(end - entry) : strlen(entry);
		size_t name_len;
		struct user *u = &p->users[p->user_count];

		colon = memchr(entry, ':', len);
		if(colon == NULL || colon == entry){
			mosquitto_log_printf(MOSQ_LOG_ERR,
					"scram_auth: plugin_opt_users: entry %zu is not name:password",
					p->user_count + 1);
			return false;
		}
		name_len = (size_t)(colon - entry);
		if(name_len > MAX_NAME){
			mosquitto_log_printf(MOSQ_LOG_ERR,
					"scram_auth: plugin_opt_users: name longer than %d bytes", MAX_NAME);
			return false;
		}
		memcpy(u->name, entry, name_len);
		u->name[name_len] = '\0';
		if(find_user(p, u->name)){
			mosquitto_log_printf(MOSQ_LOG_ERR, "scram_auth: plugin_opt_users: %s twice",
					u->name);
			return false;
		}
		if(!derive_user(u, colon + 1, len - name_len - 1, p->iterations)){
			mosquitto_log_printf(MOSQ_LOG_ERR, "scram_auth: key derivation failed");
			return false;
		}
		p->user_count++;
		entry = end ? end + 1 : NULL;
	}
	return true;
}

static void plugin_free(struct plugin *p)
{
	if(p == NULL) return;
	while(p->sessions) session_remove(p, p->sessions->client);
	if(p->users){
		OPENSSL_cleanse(p->users, p->user_count * sizeof(*p->users));
		mosquitto_free(p->users);
	}
	OPENSSL_cleanse(p, sizeof(*p));
	mosquitto_free(p);
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for(int i = 0; i < supported_version_count; i++){
		if(supported_versions[i] == 5) return 5;
	}
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
		struct mosquitto_opt *options, int option_count)
{
	struct plugin *p;
	const char *users = NULL;
	int rc;

	p = mosquitto_calloc(1, sizeof(*p));
	if(p == NULL) return MOSQ_ERR_NOMEM;
	p->id = identifier;
	p->iterations = DEFAULT_ITERATIONS;
	p->reauth_allowed = true;

	/* Options other than users first: the iteration count is needed to derive keys. */
	for(int i = 0; i < option_count; i++){
		const char *key = options[i].key, *value = options[i].value;
		if(strcmp(key, "users") == 0){
			users = value;
		}else if(strcmp(key, "iterations") == 0){
			char *end;
			long n = strtol(value, &end, 10);
			if(*value == '\0' || *end != '\0' || n < 1 || n > MAX_ITERATIONS){
				mosquitto_log_printf(MOSQ_LOG_ERR,
						"scram_auth: plugin_opt_iterations must be 1..%d", MAX_ITERATIONS);
				plugin_free(p);
				return MOSQ_ERR_INVAL;
			}
			p->iterations = (int)n;
		}else if(strcmp(key, "reauth") == 0){
			if(strcmp(value, "allow") == 0){
				p->reauth_allowed = true;
			}else if(strcmp(value, "deny") == 0){
				p->reauth_allowed = false;
			}else{
				mosquitto_log_printf(MOSQ_LOG_ERR,
						"scram_auth: plugin_opt_reauth must be allow or deny");
				plugin_free(p);
				return MOSQ_ERR_INVAL;
			}
		}else{
			mosquitto_log_printf(MOSQ_LOG_ERR, "scram_auth: unknown option plugin_opt_%s",
					key);
			plugin_free(p);
			return MOSQ_ERR_INVAL;
		}
	}
	if(users == NULL){
		mosquitto_log_printf(MOSQ_LOG_ERR, "scram_auth: plugin_opt_users is required");
		plugin_free(p);
		return MOSQ_ERR_INVAL;
	}
	if(RAND_bytes(p->fake_salt_key, KEY_LEN) != 1 || !parse_users(p, users)){
		plugin_free(p);
		return MOSQ_ERR_INVAL;
	}

	rc = mosquitto_callback_register(identifier, MOSQ_EVT_EXT_AUTH_START, on_ext_auth_start,
			NULL, p);
	if(rc == MOSQ_ERR_SUCCESS){
		rc = mosquitto_callback_register(identifier, MOSQ_EVT_EXT_AUTH_CONTINUE,
				on_ext_auth_continue, NULL, p);
	}
	if(rc == MOSQ_ERR_SUCCESS){
		rc = mosquitto_callback_register(identifier, MOSQ_EVT_DISCONNECT, on_disconnect,
				NULL, p);
	}
	if(rc != MOSQ_ERR_SUCCESS){
		mosquitto_callback_unregister(identifier, MOSQ_EVT_EXT_AUTH_START,
				on_ext_auth_start, NULL);
		mosquitto_callback_unregister(identifier, MOSQ_EVT_EXT_AUTH_CONTINUE,
				on_ext_auth_continue, NULL);
		plugin_free(p);
		return rc;
	}
	mosquitto_log_printf(MOSQ_LOG_INFO,
			"scram_auth: method %s, %zu user(s), %d iterations, re-authentication %s",
			METHOD, p->user_count, p->iterations, p->reauth_allowed ? "allowed" : "denied");
	*userdata = p;
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	struct plugin *p = userdata;

	(void)options;
	(void)option_count;
	if(p == NULL) return MOSQ_ERR_SUCCESS;
	mosquitto_callback_unregister(p->id, MOSQ_EVT_EXT_AUTH_START, on_ext_auth_start, NULL);
	mosquitto_callback_unregister(p->id, MOSQ_EVT_EXT_AUTH_CONTINUE, on_ext_auth_continue,
			NULL);
	mosquitto_callback_unregister(p->id, MOSQ_EVT_DISCONNECT, on_disconnect, NULL);
	plugin_free(p);
	return MOSQ_ERR_SUCCESS;
}
