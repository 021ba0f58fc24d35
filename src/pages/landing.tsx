/** @jsxRuntime automatic @jsxImportSource hono/jsx */
import type { Child } from 'hono/jsx'
import type { Partner } from '../../providers/types'
import type { LandingFailure } from '../domain/landing'
import { Layout } from './layout'

/** What each marketplace's buyer must do to get a fresh token (the marketplaces' own wording). */
const retryFromMarketplace: Record<Partner, () => Child> = {
  azure: () => (
    <p>
      Please reopen the subscription in the Azure portal (or the Microsoft 365 admin center) and select “Configure account” again.
      Azure will issue a fresh link.
    </p>
  ),
  aws: () => <p>Please return to the product's page in AWS Marketplace and choose “Set up your account” again.</p>,
  gcp: () => <p>Please return to the product's page in Google Cloud Marketplace and choose “Sign up” again.</p>,
}

export const failureStatus: Record<LandingFailure, 400 | 404 | 502 | 503> = {
  'not-found': 404,
  'missing-token': 400,
  'invalid-token': 400,
  configuration: 503,
  upstream: 502,
  'activation-pending': 503,
}

export function LandingFailurePage(props: { reason: LandingFailure; partner: Partner | null; requestId: string }) {
  const reference = <p class="muted">Reference: {props.requestId}</p>
  const retry = props.partner ? retryFromMarketplace[props.partner]() : null
  switch (props.reason) {
    case 'missing-token':
    case 'invalid-token':
      return (
        <Layout title="We couldn't identify this purchase">
          <h1>We couldn't identify this purchase</h1>
          <p>
            {props.reason === 'missing-token'
              ? 'The link that brought you here did not include the marketplace purchase token. It may have been opened from a bookmark, a shared link or an email preview.'
              : 'The marketplace purchase token in this link is invalid or has expired.'}
          </p>
          {retry}
          {reference}
        </Layout>
      )
    case 'not-found':
      return (
        <Layout title="Signup link not found">
          <h1>This signup link isn't set up</h1>
          <p>We could not find the product this link belongs to. Please contact the seller of the product you purchased.</p>
          {reference}
        </Layout>
      )
    case 'activation-pending':
      return (
        <Layout title="Your purchase was received">
          <h1>Your purchase was received</h1>
          <p>We could not confirm it with the marketplace just yet. Nothing is lost.</p>
          <p>Please try again in a minute by reloading this page.</p>
          {reference}
        </Layout>
      )
    case 'configuration':
    case 'upstream':
      return (
        <Layout title="Please try again shortly">
          <h1>We can't complete your signup right now</h1>
          <p>Your purchase is safe; the problem is on our side and has been reported.</p>
          <p>Please try again in a few minutes by reloading this page.</p>
          {reference}
        </Layout>
      )
  }
}

export function ErrorPage(props: { title: string; message: string; requestId: string }) {
  return (
    <Layout title={props.title}>
      <h1>{props.title}</h1>
      <p>{props.message}</p>
      <p class="muted">Reference: {props.requestId}</p>
    </Layout>
  )
}
