// Seam's own JavaScript SDK (@seamapi/http, pinned in tests/sdk/package-lock.json), unchanged,
// against zwlock's API on its Unix socket (and its token-protected TCP listener, for the
// unauthorized error).
//
// Usage: node seam_js_check.cjs SOCKET TCP_PORT TOKEN (NODE_PATH = the SDK's node_modules).
// Exits 0 and prints "seam js sdk: ok" when every step behaves as Seam documents; prints the
// step that failed otherwise. Run by tests/seam_js_sdk.rs against a daemon on the simulator.
'use strict'

const assert = require('node:assert/strict')
const {
  SeamHttp,
  SeamHttpApiError,
  SeamHttpInvalidInputError,
  SeamHttpUnauthorizedError,
} = require('@seamapi/http/connect')

const [socketPath, tcpPort, token] = process.argv.slice(2)
let step = 'start'

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function until(what, pred, seconds = 30) {
  const deadline = Date.now() + seconds * 1000
  for (;;) {
    if (await pred()) return
    assert.ok(Date.now() < deadline, `${what}: not within ${seconds} s`)
    await sleep(200)
  }
}

// The error an SDK call throws, checked to be of `cls`.
async function refused(cls, call) {
  try {
    await call()
  } catch (e) {
    assert.ok(e instanceof cls, `${step}: expected ${cls.name}, got ${e && e.constructor && e.constructor.name}: ${e && e.message}`)
    assert.ok(typeof e.requestId === 'string' && e.requestId.length > 0, `${step}: no seam-request-id on the error`)
    return e
  }
  throw new Error(`${step}: accepted, expected ${cls.name}`)
}

function invalidField(e, field) {
  assert.equal(e.statusCode, 400)
  const messages = e.getValidationErrorMessages(field)
  assert.ok(messages.length > 0, `${step}: no validation message for ${field}: ${JSON.stringify(e.validationErrors)}`)
  return messages
}

async function main() {
  // The SDK's own axios client, pointed at the socket (axios's http adapter takes a socketPath).
  const seam = SeamHttp.fromApiKey('seam_zwlock_local', {
    endpoint: 'http://localhost',
    axiosOptions: { adapter: 'http', socketPath },
  })
  const status = async (id) => (await seam.accessCodes.get({ access_code_id: id })).status

  step = 'devices and locks'
  const devices = await seam.devices.list()
  assert.equal(devices.length, 2)
  const [a, b] = devices.map((d) => d.device_id)
  assert.equal((await seam.devices.get({ device_id: a })).device_id, a)
  assert.equal((await seam.locks.list()).length, 2)
  assert.equal((await seam.locks.get({ device_id: b })).device_id, b)
  assert.deepEqual(
    (await seam.devices.list({ device_ids: [b] })).map((d) => d.device_id),
    [b],
  )

  step = 'create, get, list'
  const code = await seam.accessCodes.create({ device_id: a, code: '4817', name: 'cleaner' })
  assert.equal(code.code, '4817')
  assert.equal(code.name, 'cleaner')
  assert.equal(code.is_managed, true)
  await until('code set', async () => (await status(code.access_code_id)) === 'set')
  const byPin = await seam.accessCodes.get({ device_id: a, code: '4817' })
  assert.equal(byPin.access_code_id, code.access_code_id)
  assert.deepEqual(
    (await seam.accessCodes.list({ device_id: a })).map((c) => c.access_code_id),
    [code.access_code_id],
  )

  step = 'update'
  await seam.accessCodes.update({ access_code_id: code.access_code_id, code: '5928', name: 'cleaner (new)' })
  const updated = await seam.accessCodes.get({ access_code_id: code.access_code_id })
  assert.equal(updated.code, '5928')
  assert.equal(updated.name, 'cleaner (new)')
  await until('updated code set', async () => (await status(code.access_code_id)) === 'set')

  step = 'common_code_key links PINs'
  const f1 = await seam.accessCodes.create({ device_id: a, common_code_key: 'family', name: 'family' })
  const f2 = await seam.accessCodes.create({ device_id: b, common_code_key: 'family', name: 'family' })
  assert.equal(f2.code, f1.code)
  let e = await refused(SeamHttpInvalidInputError, () =>
    seam.accessCodes.create({ device_id: b, common_code_key: 'family', code: f1.code === '7391' ? '7392' : '7391' }),
  )
  invalidField(e, 'code')

  step = 'update_multiple'
  await seam.accessCodes.updateMultiple({ common_code_key: 'family', name: 'family (all)' })
  for (const id of [f1.access_code_id, f2.access_code_id]) {
    assert.equal((await seam.accessCodes.get({ access_code_id: id })).name, 'family (all)')
  }

  step = 'create_multiple'
  const shared = await seam.accessCodes.createMultiple({ device_ids: [a, b], name: 'guest' })
  assert.equal(shared.length, 2)
  assert.equal(shared[0].code, shared[1].code)
  assert.ok(shared[0].common_code_key)
  assert.equal(shared[0].common_code_key, shared[1].common_code_key)

  step = 'generate_code'
  const generated = await seam.accessCodes.generateCode({ device_id: a })
  assert.match(generated.code, /^\d{4,10}$/)

  step = 'paginator'
  const pages = seam.createPaginator(seam.accessCodes.list({ device_id: a, limit: 2 }))
  const [first, pagination] = await pages.firstPage()
  assert.equal(first.length, 2)
  assert.equal(pagination.hasNextPage, true)
  const all = await pages.flattenToArray()
  const ids = all.map((c) => c.access_code_id)
  assert.equal(new Set(ids).size, ids.length, 'a page repeated a code')
  assert.equal(ids.length, (await seam.accessCodes.list({ device_id: a })).length)

  step = 'unmanaged'
  const unmanaged = await seam.accessCodes.unmanaged.list({ device_id: a })
  assert.equal(unmanaged.length, 1)
  assert.equal(unmanaged[0].code, '2580')
  assert.equal(unmanaged[0].is_managed, false)
  const uid = unmanaged[0].access_code_id
  assert.equal((await seam.accessCodes.unmanaged.get({ access_code_id: uid })).code, '2580')
  assert.equal((await seam.accessCodes.unmanaged.get({ device_id: a, code: '2580' })).access_code_id, uid)
  e = await refused(SeamHttpApiError, () => seam.accessCodes.create({ device_id: a, code: '2580' }))
  assert.equal(e.statusCode, 409)
  assert.equal(e.code, 'conflicting_unmanaged_access_code_id')
  await seam.accessCodes.unmanaged.convertToManaged({ access_code_id: uid })
  assert.equal((await seam.accessCodes.get({ access_code_id: uid })).code, '2580')
  assert.deepEqual(await seam.accessCodes.unmanaged.list({ device_id: a }), [])
  // Back to unmanaged, then managed again through unmanaged/update, then unmanaged and removed.
  await seam.accessCodes.update({ access_code_id: uid, is_managed: false })
  let back
  await until('unmanaged again', async () => {
    back = (await seam.accessCodes.unmanaged.list({ device_id: a })).find((c) => c.code === '2580')
    return back !== undefined
  })
  await seam.accessCodes.unmanaged.update({ access_code_id: back.access_code_id, is_managed: true })
  assert.equal((await seam.accessCodes.get({ device_id: a, code: '2580' })).is_managed, true)
  await seam.accessCodes.update({ access_code_id: (await seam.accessCodes.get({ device_id: a, code: '2580' })).access_code_id, is_managed: false })
  await until('unmanaged once more', async () => {
    back = (await seam.accessCodes.unmanaged.list({ device_id: a })).find((c) => c.code === '2580')
    return back !== undefined
  })
  await seam.accessCodes.unmanaged.delete({ access_code_id: back.access_code_id })
  await until('unmanaged code removed', async () =>
    (await seam.accessCodes.unmanaged.list({ device_id: a })).every((c) => c.code !== '2580'),
  )

  step = 'backup pool'
  const now = Date.now()
  const timed = await seam.accessCodes.create({
    device_id: b,
    name: 'stay',
    starts_at: new Date(now - 60_000).toISOString(),
    ends_at: new Date(now + 86_400_000).toISOString(),
    use_backup_access_code_pool: true,
  })
  let backup
  await until('a backup to pull', async () => {
    try {
      backup = await seam.accessCodes.pullBackupAccessCode({ access_code_id: timed.access_code_id })
      return true
    } catch (err) {
      if (err instanceof SeamHttpApiError && err.statusCode < 500) return false
      throw err
    }
  }, 60)
  assert.notEqual(backup.access_code_id, timed.access_code_id)
  assert.match(backup.code, /^\d{4,10}$/)

  step = 'door and action attempts'
  const unlocked = await seam.locks.unlockDoor({ device_id: a })
  assert.equal(unlocked.status, 'success')
  assert.equal(unlocked.action_type, 'UNLOCK_DOOR')
  const locked = await seam.locks.lockDoor({ device_id: a })
  assert.equal(locked.status, 'success')
  const attempt = await seam.actionAttempts.get({ action_attempt_id: locked.action_attempt_id })
  assert.equal(attempt.action_attempt_id, locked.action_attempt_id)
  assert.equal((await seam.locks.get({ device_id: a })).properties.locked, true)

  step = 'events'
  const events = await seam.events.list({ since: new Date(now - 3_600_000).toISOString() })
  const kinds = events.filter((x) => x.access_code_id === code.access_code_id).map((x) => x.event_type)
  assert.ok(kinds.includes('access_code.created'), JSON.stringify(kinds))
  assert.ok(kinds.includes('access_code.set_on_device'), JSON.stringify(kinds))

  step = 'errors'
  e = await refused(SeamHttpInvalidInputError, () => seam.accessCodes.create({ device_id: a, code: '12a4' }))
  invalidField(e, 'code')
  e = await refused(SeamHttpInvalidInputError, () =>
    seam.accessCodes.create({ device_id: a, starts_at: '2030-01-01', ends_at: '2030-01-02T10:00:00Z' }),
  )
  assert.ok(invalidField(e, 'starts_at')[0].includes('date without a time'))
  e = await refused(SeamHttpInvalidInputError, () => seam.accessCodes.create({ device_id: a, max_time_rounding: '1d' }))
  invalidField(e, 'max_time_rounding')
  e = await refused(SeamHttpInvalidInputError, () => seam.accessCodes.create({ device_id: a, use_offline_access_code: true }))
  invalidField(e, 'use_offline_access_code')
  e = await refused(SeamHttpInvalidInputError, () =>
    seam.accessCodes.list({ device_id: a, access_method_id: '8f8e3f0e-0000-4000-8000-000000000000' }),
  )
  invalidField(e, 'access_method_id')
  e = await refused(SeamHttpApiError, () =>
    seam.accessCodes.get({ access_code_id: '8f8e3f0e-0000-4000-8000-000000000000' }),
  )
  assert.equal(e.statusCode, 404)
  assert.equal(e.code, 'access_code_not_found')
  const stranger = SeamHttp.fromApiKey('seam_not_the_token', {
    endpoint: `http://127.0.0.1:${tcpPort}`,
    axiosOptions: { adapter: 'http' },
  })
  await refused(SeamHttpUnauthorizedError, () => stranger.devices.list())
  const viaTcp = SeamHttp.fromApiKey(token, {
    endpoint: `http://127.0.0.1:${tcpPort}`,
    axiosOptions: { adapter: 'http' },
  })
  assert.equal((await viaTcp.devices.list()).length, 2)

  step = 'round two: workspace, devices.update, constraints, simulated keypad'
  const workspace = await seam.workspaces.get()
  assert.equal(workspace.workspace_id, (await seam.devices.get({ device_id: a })).workspace_id)
  await seam.devices.update({ device_id: b, name: 'Back door' })
  assert.equal((await seam.devices.get({ device_id: b })).properties.name, 'Back door')
  await seam.accessCodes.reportDeviceConstraints({ device_id: b, supported_code_lengths: [4, 6] })
  assert.deepEqual((await seam.devices.get({ device_id: b })).properties.supported_code_lengths, [4, 6])
  e = await refused(SeamHttpInvalidInputError, () => seam.accessCodes.create({ device_id: b, code: '12345' }))
  invalidField(e, 'code')
  e = await refused(SeamHttpInvalidInputError, () =>
    seam.accessCodes.reportDeviceConstraints({ device_id: b, min_code_length: 4, max_code_length: 12 }),
  )
  assert.equal(e.statusCode, 400)
  const keypad = await seam.accessCodes.simulate.createUnmanagedAccessCode({ device_id: b, code: '5678', name: 'keypad' })
  assert.equal(keypad.code, '5678')
  assert.equal(keypad.is_managed, false)
  assert.ok((await seam.accessCodes.unmanaged.list({ device_id: b })).some((c) => c.code === '5678'))
  const entry = await seam.locks.simulate.keypadCodeEntry({ device_id: a, code: '5928' })
  assert.equal(entry.status, 'success')
  assert.equal(entry.action_type, 'SIMULATE_KEYPAD_CODE_ENTRY')
  let unlockedBy
  await until("the keypad entry's unlock event", async () => {
    unlockedBy = await seam.events.get({ device_id: a, event_type: 'lock.unlocked' })
    return unlockedBy.access_code_id === code.access_code_id
  })
  assert.equal((await seam.events.get({ event_id: unlockedBy.event_id })).event_id, unlockedBy.event_id)
  const attempts = await seam.actionAttempts.list({ action_attempt_ids: [locked.action_attempt_id, entry.action_attempt_id] })
  assert.deepEqual(
    attempts.map((x) => x.action_attempt_id).sort(),
    [locked.action_attempt_id, entry.action_attempt_id].sort(),
  )

  step = 'delete'
  await seam.accessCodes.delete({ access_code_id: code.access_code_id })
  await until('deleted code gone', async () => {
    try {
      await seam.accessCodes.get({ access_code_id: code.access_code_id })
      return false
    } catch (err) {
      assert.ok(err instanceof SeamHttpApiError)
      assert.equal(err.code, 'access_code_not_found')
      return true
    }
  })
  console.log('seam js sdk: ok')
}

main().catch((e) => {
  console.error(`seam js sdk: failed at "${step}":`, e)
  process.exit(1)
})
