import { MarketplaceAgreementClient, SearchAgreementsCommand, type SearchAgreementsCommandInput } from '@aws-sdk/client-marketplace-agreement'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type AwsAgreementEmulator, createAwsAgreementEmulator } from '../../sandbox/emulators/aws-agreement'

// The emulator's SearchAgreements, driven by AWS's own SDK v3 client (awsJson 1.0 + SigV4).

let agreements: AwsAgreementEmulator
let url: string
let close: () => Promise<void>
const seller = { accessKeyId: 'AKIASELLERAGREEMENT1', secretAccessKey: 'agreement/secret+key=' }
const buyer = { accessKeyId: 'AKIABUYERAGREEMENT01', secretAccessKey: 'buyer/secret' }

beforeAll(async () => {
  agreements = createAwsAgreementEmulator()
  ;({ url, close } = await agreements.listen())
  agreements.addCredentials(seller.accessKeyId, seller.secretAccessKey)
  agreements.addCredentials(buyer.accessKeyId, buyer.secretAccessKey, '999988887777')
  for (let n = 0; n < 12; n++) {
    agreements.addAgreement({ agreementId: `agmt-page-${n}`, acceptorAccountId: '555500001111', licenseArns: [`arn:aws:license-manager::294406891311:license:l-page${n}`] })
  }
  agreements.addAgreement({ agreementId: 'agmt-b1', acceptorAccountId: '999988887777', productId: 'prod-b', offerId: 'offer-b', licenseArns: ['arn:aws:license-manager::294406891311:license:l-b1'], endTime: 2_000_000_000 })
  agreements.addAgreement({ agreementId: 'agmt-b2', acceptorAccountId: '999988887777', productId: 'prod-b', status: 'CANCELLED', licenseArns: ['arn:aws:license-manager::294406891311:license:l-b2'] })
  agreements.addAgreement({ agreementId: 'agmt-cppo', acceptorAccountId: '999988887777', proposerAccountId: '444433332222' })
})
afterAll(async () => {
  await close()
})

const client = (credentials = seller) => new MarketplaceAgreementClient({ endpoint: url, region: 'us-east-1', credentials, maxAttempts: 1 })
const search = (filters: Record<string, string[]>, extra: Partial<SearchAgreementsCommandInput> = {}, c = client()) =>
  c.send(new SearchAgreementsCommand({ catalog: 'AWSMarketplace', filters: Object.entries(filters).map(([name, values]) => ({ name, values })), ...extra }))
const asProposer = { PartyType: ['Proposer'], AgreementType: ['PurchaseAgreement'] }

describe('SearchAgreements', () => {
  test('the wire: awsJson 1.0 with the AWSMPCommerceService_v20200301 target, signed for aws-marketplace in us-east-1', async () => {
    await search({ ...asProposer, AcceptorAccountId: ['999988887777'] })
    const call = agreements.calls.at(-1)!
    expect(call).toMatchObject({ target: 'SearchAgreements', accessKeyId: seller.accessKeyId, service: 'aws-marketplace', region: 'us-east-1' })
  })

  test('the seller as proposer, filtered by the buyer account: its agreements with their licenses and dates; not a channel partner’s', async () => {
    const result = await search({ ...asProposer, AcceptorAccountId: ['999988887777'] })
    expect(result.agreementViewSummaries!.map((a) => a.agreementId)).toEqual(['agmt-b1', 'agmt-b2'])
    const [first] = result.agreementViewSummaries!
    expect(first).toMatchObject({
      agreementType: 'PurchaseAgreement',
      acceptor: { accountId: '999988887777' },
      proposer: { accountId: agreements.sellerAccountId },
      status: 'ACTIVE',
      entitlements: [{ licenseArn: 'arn:aws:license-manager::294406891311:license:l-b1' }],
      initialAgreementId: 'agmt-b1',
      proposalSummary: { offerId: 'offer-b', resources: [{ id: 'prod-b', type: 'SaaSProduct' }] },
    })
    expect(first!.endTime).toEqual(new Date(2_000_000_000_000))
    expect(first!.startTime).toBeInstanceOf(Date)
    expect((await search({ ...asProposer, AcceptorAccountId: ['999988887777'], Status: ['CANCELLED'] })).agreementViewSummaries!.map((a) => a.agreementId)).toEqual(['agmt-b2'])
    expect((await search({ ...asProposer, LicenseArn: ['arn:aws:license-manager::294406891311:license:l-b1'] })).agreementViewSummaries!.map((a) => a.agreementId)).toEqual(['agmt-b1'])
  })

  test('pages with nextToken (10 by default, maxResults up to 50)', async () => {
    const first = await search({ ...asProposer, AcceptorAccountId: ['555500001111'] })
    expect(first.agreementViewSummaries).toHaveLength(10)
    const second = await search({ ...asProposer, AcceptorAccountId: ['555500001111'] }, { nextToken: first.nextToken })
    expect(second.agreementViewSummaries).toHaveLength(2)
    expect(second.nextToken).toBeUndefined()
    expect((await search({ ...asProposer, AcceptorAccountId: ['555500001111'] }, { maxResults: 50 })).agreementViewSummaries).toHaveLength(12)
  })

  test('the buyer as acceptor sees its own, with the documented filter combinations only', async () => {
    const mine = await search({ PartyType: ['Acceptor'], AgreementType: ['PurchaseAgreement'], Status: ['ACTIVE'] }, {}, client(buyer))
    expect(mine.agreementViewSummaries!.map((a) => a.agreementId)).toEqual(['agmt-b1', 'agmt-cppo'])
    await expect(search({ PartyType: ['Acceptor'], AgreementType: ['PurchaseAgreement'], AcceptorAccountId: ['999988887777'] }, {}, client(buyer))).rejects.toMatchObject({ name: 'ValidationException' })
  })

  test('errors as AWS names them: AgreementType required, unknown keys refused, faults injected', async () => {
    await expect(search({ PartyType: ['Proposer'] })).rejects.toMatchObject({ name: 'ValidationException', $metadata: { httpStatusCode: 400 } })
    await expect(search(asProposer, {}, client({ accessKeyId: 'AKIANOBODY0000000001', secretAccessKey: 'x' }))).rejects.toMatchObject({ $metadata: { httpStatusCode: 403 } })
    agreements.failNext(500, 'InternalServerException')
    await expect(search(asProposer)).rejects.toMatchObject({ name: 'InternalServerException', $fault: 'server' })
    expect((await search(asProposer)).agreementViewSummaries!.length).toBeGreaterThan(0)
  })
})
